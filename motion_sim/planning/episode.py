"""One scene, one world, every planner: the closed loop and its returns."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from motion_sim.data import frames
from motion_sim.planning import candidates
from motion_sim.planning import reward as reward_lib
from motion_sim.planning.planner import RandomShootingPlanner, planner_rows
from motion_sim.planning.scene_context import SceneContext

NUM_TOKEN_STEPS = 16  # 8 s at 2 Hz


class EpisodeResult(NamedTuple):
    """Returns of P planners over K rollouts of one world ([P, K] float32 each).

    Attributes:
      returns: summed reward over the 80 steps.
      collision, offroad, off_route, progress: summed terms (steps in collision / off road /
        off route, metres of progress).
    """

    returns: np.ndarray
    collision: np.ndarray
    offroad: np.ndarray
    off_route: np.ndarray
    progress: np.ndarray


def run_episode(
    ctx: SceneContext,
    world,
    planner: RandomShootingPlanner,
    planners: candidates.PlannerSet,
    num_rollouts: int,
    seed,
    reward: reward_lib.PlannerReward | None = None,
    return_trajectories: bool = False,
):
    """Runs every planner in `num_rollouts` copies of `world` (W = P * K worlds batched).

    Non-reactive worlds (log, constant velocity) give the same return in every rollout, so
    they run one rollout and repeat it.
    """
    reward = reward or planner.reward
    k = num_rollouts if world.reactive else 1
    j, d, _ = planner_rows(planners, k)
    w = len(j)
    av = np.repeat(ctx.av_state[None], w, axis=0)
    states = [av]
    world.reset(ctx, w, seed)
    for t in range(NUM_TOKEN_STEPS):
        obs = world.observe(t)
        bshape = lambda x: np.broadcast_to(x, (w,) + x.shape[1:])  # noqa: E731
        executed, _ = planner.plan(
            av,
            ctx.av_size[:2],
            bshape(obs.xy),
            bshape(obs.vel),
            bshape(obs.heading),
            ctx.others_size,
            bshape(obs.valid),
            j,
            d,
            ctx.path,
        )
        executed = executed.numpy()
        av = executed[:, -1]
        states.append(executed)
        world.advance(t, av[:, :2])
    av_states = np.concatenate([states[0][:, None]] + states[1:], axis=1)  # [W, 81, 4]
    others = world.trajectories()
    frame = {k_: np.asarray(v)[0] for k_, v in ctx.scene.items()}
    world_xy, world_heading = frames.to_world(av_states[..., :2], av_states[..., 2], frame)
    edge = reward_lib.road_edge_distance(world_xy, world_heading, ctx.av_z, ctx.av_size, ctx.edges)
    bshape = lambda x: np.broadcast_to(x, (w,) + x.shape[1:])  # noqa: E731
    terms = reward(
        av_states[..., :2],
        av_states[..., 2],
        ctx.av_size[:2],
        bshape(others.xy),
        bshape(others.heading),
        ctx.others_size,
        bshape(others.valid),
        ctx.path,
        edge,
    )
    num_p = len(planners.num_candidates)

    def per_planner(x):
        x = np.sum(np.asarray(x), axis=-1).reshape(num_p, k)
        return np.repeat(x, num_rollouts // k, axis=1) if k == 1 else x

    result = EpisodeResult(
        per_planner(terms.reward),
        per_planner(terms.collision),
        per_planner(terms.offroad),
        per_planner(terms.off_route),
        per_planner(terms.progress),
    )
    if return_trajectories:
        return result, av_states, others
    return result
