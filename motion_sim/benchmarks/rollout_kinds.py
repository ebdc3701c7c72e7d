"""Rollouts of several kinds for metric benchmarks and tests (no trained model needed).

Kinds (`RolloutKind`):
  near_log: the logged future (held at the last valid state) plus a small random walk, as a
    good model's rollouts;
  noisy_cv: constant velocity from the current state with a per-rollout speed / heading
    perturbation and a random walk: rollouts that drift apart and off the road, as a trained
    model's do;
  random: `motion_sim.agents.RandomAgent` (random accelerations and yaw rates);
  colliding: noisy constant velocity, with every evaluated agent driven onto its nearest
    neighbour's position in half the rollouts (collisions, overlaps);
  glitch: near-log with one evaluated agent jumping 100 m at one step of one rollout;
  huge: near-log with one coordinate of 1e30 (finite: passes validation).
"""

from __future__ import annotations

import enum

import numpy as np
from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2
from waymo_open_dataset.utils.sim_agents import submission_specs

from export import saved_model_rollouts
from motion_sim.agents import random_agent

_CURRENT, _STEPS, _DT = 10, 80, 0.1
_CHALLENGE = submission_specs.ChallengeType.SIM_AGENTS


class RolloutKind(enum.Enum):
    NEAR_LOG = "near_log"
    NOISY_CV = "noisy_cv"
    RANDOM = "random"
    COLLIDING = "colliding"
    GLITCH = "glitch"
    HUGE = "huge"


def _base(scenario: scenario_pb2.Scenario, ids: list, kind: RolloutKind) -> np.ndarray:
    """[A, 80, 4] float64 log future (near-log kinds) or constant velocity."""
    tracks = {t.id: t for t in scenario.tracks}
    t = np.arange(1, _STEPS + 1) * _DT
    out = np.zeros((len(ids), _STEPS, 4))
    for row, object_id in enumerate(ids):
        states = tracks[object_id].states
        now = states[_CURRENT]
        if kind in (RolloutKind.NEAR_LOG, RolloutKind.GLITCH, RolloutKind.HUGE):
            last = now
            for k, s in enumerate(states[_CURRENT + 1 :]):
                last = s if s.valid else last
                out[row, k] = (last.center_x, last.center_y, last.center_z, last.heading)
        else:
            out[row] = np.stack(
                [
                    now.center_x + now.velocity_x * t,
                    now.center_y + now.velocity_y * t,
                    np.full_like(t, now.center_z),
                    np.full_like(t, now.heading),
                ],
                -1,
            )
    return out


def _noisy_cv(scenario, ids, rng, num_rollouts):
    """[R, A, 80, 4]: constant velocity, per rollout a speed factor and a heading offset
    (applied to the velocity, so rollouts fan out) plus a random walk."""
    tracks = {t.id: t for t in scenario.tracks}
    t = np.arange(1, _STEPS + 1) * _DT
    now = np.array(
        [
            [
                tracks[i].states[_CURRENT].center_x,
                tracks[i].states[_CURRENT].center_y,
                tracks[i].states[_CURRENT].center_z,
                tracks[i].states[_CURRENT].heading,
                tracks[i].states[_CURRENT].velocity_x,
                tracks[i].states[_CURRENT].velocity_y,
            ]
            for i in ids
        ]
    )
    factor = rng.uniform(0.7, 1.3, size=(num_rollouts, len(ids), 1))
    turn = rng.normal(scale=0.15, size=(num_rollouts, len(ids), 1))
    c, s = np.cos(turn), np.sin(turn)
    vx = factor * (c * now[None, :, 4:5] - s * now[None, :, 5:6])
    vy = factor * (s * now[None, :, 4:5] + c * now[None, :, 5:6])
    x = now[None, :, 0:1] + vx * t
    y = now[None, :, 1:2] + vy * t
    z = np.broadcast_to(now[None, :, 2:3], x.shape)
    heading = now[None, :, 3:4] + turn + np.zeros_like(t)
    out = np.stack([x, y, z, heading], axis=-1)
    walk = np.cumsum(rng.normal(size=out.shape) * np.array([0.1, 0.1, 0.01, 0.01]), axis=2)
    return out + walk


def make_rollouts(
    scenario: scenario_pb2.Scenario, kind: RolloutKind | str, seed: int = 0, num_rollouts: int = 32
) -> sim_agents_submission_pb2.ScenarioRollouts:
    """`num_rollouts` joint scenes of `kind` for every sim agent of `scenario`."""
    kind = RolloutKind(kind)
    if kind == RolloutKind.RANDOM:
        return saved_model_rollouts.generate_rollouts_in_process(
            random_agent.RandomAgent(), scenario, seed, num_rollouts
        )
    rng = np.random.default_rng(seed)
    ids = list(submission_specs.get_sim_agent_ids(scenario, _CHALLENGE))
    eval_ids = list(submission_specs.get_evaluation_sim_agent_ids(scenario, _CHALLENGE))
    if kind in (RolloutKind.NOISY_CV, RolloutKind.COLLIDING):
        traj = _noisy_cv(scenario, ids, rng, num_rollouts)
    else:
        base = _base(scenario, ids, kind)
        walk = np.cumsum(
            rng.normal(size=(num_rollouts,) + base.shape) * np.array([0.05, 0.05, 0.01, 0.01]),
            axis=2,
        )
        traj = base[np.newaxis] + walk
    if kind == RolloutKind.COLLIDING:
        # Half the rollouts: each evaluated agent heads for its nearest other agent's
        # position at the current step, reaching it half way (overlapping boxes).
        xy = traj[0, :, 0, :2]
        for e in eval_ids:
            row = ids.index(e)
            d = np.linalg.norm(xy - xy[row], axis=-1)
            d[row] = np.inf
            target = traj[:, int(np.argmin(d)), _STEPS // 2, :2]  # [R, 2]
            frac = np.clip(np.arange(1, _STEPS + 1) / (_STEPS // 2), 0, 1)[None, :, None]
            start = traj[:, row, :1, :2]
            traj[::2, row, :, :2] = (start + frac * (target[:, None] - start))[::2]
    if kind == RolloutKind.GLITCH:
        traj[3, ids.index(eval_ids[0]), 40, 0] += 100.0
    if kind == RolloutKind.HUGE:
        traj[5, ids.index(eval_ids[-1]), 20, 1] = 1e30
    scenes = []
    for r in range(num_rollouts):
        scene = sim_agents_submission_pb2.JointScene()
        for row, object_id in enumerate(ids):
            scene.simulated_trajectories.add(
                object_id=object_id,
                center_x=traj[r, row, :, 0],
                center_y=traj[r, row, :, 1],
                center_z=traj[r, row, :, 2],
                heading=traj[r, row, :, 3],
            )
        scenes.append(scene)
    return sim_agents_submission_pb2.ScenarioRollouts(
        scenario_id=scenario.scenario_id, joint_scenes=scenes
    )
