"""Model-predictive random shooting: P planners x W worlds replanning at once.

Every token step (2 Hz) each world's AV scores the first J candidates of the library
(`candidates.library`), each holding one curvature and one acceleration for D token steps on
the kinematic bicycle, against a constant-velocity forecast of the other objects, and executes
the first token step of the best one. Ties go to the earlier candidate (argmax returns the
first maximum), so a planner is deterministic.

Time base: the planner replans at the sim agents' token rate (2 Hz). The world only reacts at
token steps -- the AV's executed motion enters the model's cache as one token per 0.5 s and
the others' next tokens are sampled once per 0.5 s -- so replanning at 10 Hz would act on the
same information five times; holding each decision for one token step is also what makes the
AV's motion one token. The bicycle itself is integrated at 10 Hz (five sub-steps per token
step) and the reward is scored at 10 Hz on that executed motion.

The planner's score is the reward's own terms at its token-step knots: -10 C (against the
constant-velocity forecast) - R + 1e-4 P. It has no road-edge model (O): the route term keeps
it within `route_threshold` of the logged, on-road path, and O is scored on what it executes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import gin
from motion_sim.planning import candidates as cand_lib
from motion_sim.planning import reward as reward_lib
from motion_sim.planning.bicycle import bicycle_rollout
from motion_sim.planning.route import LoggedPath

_REJECT = -1e9  # score of candidates a planner does not have


@gin.configurable
class RandomShootingPlanner:
    """Args:
    reward: the `PlannerReward` whose weights and thresholds the planner's score uses.
    num_forecast_objects: the nearest other objects (at the replanning step) forecast by
      constant velocity; farther ones cannot reach the AV within the horizon in practice.
    token_hz: replanning rate (the model's token rate, 2 Hz).
    substeps: 10 Hz bicycle steps per token step.
    """

    def __init__(
        self,
        reward: reward_lib.PlannerReward | None = None,
        num_forecast_objects: int = 32,
        token_hz: int = 2,
        substeps: int = 5,
    ):
        self.reward = reward or reward_lib.PlannerReward()
        self.num_forecast_objects = int(num_forecast_objects)
        self.token_dt = 1.0 / token_hz
        self.substeps = int(substeps)
        self.dt = self.token_dt / self.substeps
        lib = cand_lib.library()
        self.curvature = tf.constant(lib.curvature)
        self.accel = tf.constant(lib.accel)
        self.max_horizon = max(cand_lib.HORIZONS)
        self.trace_count = 0
        self._plan_fn = tf.function(self._plan, jit_compile=True)

    def plan(
        self,
        av_state,
        av_size,
        others_xy,
        others_vel,
        others_heading,
        others_size,
        others_valid,
        num_candidates,
        horizon,
        path: LoggedPath,
    ):
        """Chooses and executes one token step in each of W worlds.

        Args:
          av_state: [W, 4] scene-frame (x, y, heading, speed) now; av_size [2] length, width.
          others_xy, others_vel: [W, O, 2] other objects now (position, velocity);
            others_heading [W, O]; others_valid [W, O]; others_size [O, 2].
          num_candidates, horizon: [W] int J and D of each world's planner.
          path: the AV's logged path.
        Returns:
          (states [W, substeps, 4] executed at 10 Hz, choice [W] int32 candidate index).
        """
        av_state = tf.convert_to_tensor(av_state, tf.float32)
        others = self.nearest_objects(
            av_state,
            tf.convert_to_tensor(others_xy, tf.float32),
            tf.convert_to_tensor(others_vel, tf.float32),
            tf.convert_to_tensor(others_heading, tf.float32),
            tf.convert_to_tensor(others_size, tf.float32),
            tf.convert_to_tensor(others_valid, tf.bool),
        )
        # Outside the compiled call: its shapes then do not depend on the scene's object count.
        return self._plan_fn(
            av_state,
            tf.convert_to_tensor(av_size, tf.float32),
            *others,
            tf.convert_to_tensor(num_candidates, tf.int32),
            tf.convert_to_tensor(horizon, tf.int32),
            LoggedPath(*(tf.convert_to_tensor(x) for x in path)),
        )

    def nearest_objects(
        self, av_state, others_xy, others_vel, others_heading, others_size, others_valid
    ):
        """The `num_forecast_objects` nearest valid objects now (padded with invalid ones):
        (xy [W, N, 2], vel [W, N, 2], heading [W, N], size [W, N, 2], valid [W, N])."""
        n = self.num_forecast_objects
        pad = max(0, n - others_xy.shape[1])
        if pad:
            others_xy, others_vel = (
                tf.pad(x, [[0, 0], [0, pad], [0, 0]]) for x in (others_xy, others_vel)
            )
            others_heading = tf.pad(others_heading, [[0, 0], [0, pad]])
            others_valid = tf.pad(others_valid, [[0, 0], [0, pad]])
            others_size = tf.pad(others_size, [[0, pad], [0, 0]])
        dist = tf.norm(others_xy - av_state[:, None, :2], axis=-1)
        dist = tf.where(others_valid, dist, 1e9)  # invalid ones last (and they stay invalid)
        _, near = tf.math.top_k(-dist, k=n)  # [W, N]
        return (
            tf.gather(others_xy, near, batch_dims=1),
            tf.gather(others_vel, near, batch_dims=1),
            tf.gather(others_heading, near, batch_dims=1),
            tf.gather(others_size, near),
            tf.gather(others_valid, near, batch_dims=1),
        )

    def scores(
        self,
        av_state,
        av_size,
        o_xy,
        o_vel,
        o_heading,
        o_size,
        o_valid,
        num_candidates,
        horizon,
        path,
    ):
        """[W, 81] float32 score of every library candidate (_REJECT beyond J).

        o_*: the forecast objects from `nearest_objects` (o_size [W, N, 2]).
        """
        num_cand = self.curvature.shape[0]
        knots_per = self.substeps
        steps = self.max_horizon * knots_per
        start = tf.broadcast_to(av_state[:, None], [tf.shape(av_state)[0], num_cand, 4])
        states = bicycle_rollout(start, self.curvature, self.accel, steps, self.dt)
        knots = states[:, :, knots_per - 1 :: knots_per]  # [W, C, K, 4]
        times = tf.range(1, self.max_horizon + 1, dtype=tf.float32) * self.token_dt  # [K]
        f_xy = o_xy[:, :, None] + o_vel[:, :, None] * times[:, None]  # [W, N, K, 2]
        f_heading = tf.broadcast_to(o_heading[..., None], tf.shape(f_xy)[:-1])
        f_valid = tf.broadcast_to(o_valid[..., None], tf.shape(f_heading))
        excluded = reward_lib.current_overlap(
            av_state[:, :2], av_state[:, 2], av_size, o_xy, o_heading, o_size, o_valid
        )  # [W, N]
        coll = reward_lib.av_collision(
            knots[..., :2],
            knots[..., 2],
            av_size,
            f_xy[:, None],
            f_heading[:, None],
            o_size[:, None],
            f_valid[:, None],
            excluded[:, None],
        )  # [W, C, K]
        centres = tf.concat([start[:, :, None, :2], knots[..., :2]], axis=2)
        off_route, progress = self.reward.route_terms(centres, path)
        step_score = self.reward.combine(coll, tf.zeros_like(coll), off_route, progress).reward
        in_horizon = tf.range(self.max_horizon)[None, :] < horizon[:, None]  # [W, K]
        score = tf.reduce_sum(tf.where(in_horizon[:, None], step_score, 0.0), axis=-1)
        have = tf.range(num_cand)[None, :] < num_candidates[:, None]
        return tf.where(have, score, _REJECT)

    def _plan(
        self,
        av_state,
        av_size,
        o_xy,
        o_vel,
        o_heading,
        o_size,
        o_valid,
        num_candidates,
        horizon,
        path,
    ):
        self.trace_count += 1
        score = self.scores(
            av_state,
            av_size,
            o_xy,
            o_vel,
            o_heading,
            o_size,
            o_valid,
            num_candidates,
            horizon,
            path,
        )
        choice = tf.argmax(score, axis=-1, output_type=tf.int32)  # first maximum
        executed = bicycle_rollout(
            av_state,
            tf.gather(self.curvature, choice),
            tf.gather(self.accel, choice),
            self.substeps,
            self.dt,
        )
        return executed, choice


def planner_rows(planners: cand_lib.PlannerSet, num_rollouts: int):
    """(J [W], D [W], planner index [W]) of W = P * K worlds, rows p * K + k."""
    index = np.repeat(np.arange(len(planners.num_candidates)), num_rollouts)
    return planners.num_candidates[index], planners.horizon[index], index
