"""Logged-oracle sim agent: replays the log; where the log is invalid, extrapolates.

The upper reference of the realism metrics on train/validation data (on the test set, whose
future is withheld, it degenerates to constant velocity). A step with a valid log state is
copied exactly; an invalid step continues from the last valid state at that state's velocity,
holding its heading and height -- an occluded car keeps driving rather than freezing.
"""

from __future__ import annotations

import tensorflow as tf

from motion_sim.agents.constant_velocity import DT
from motion_sim.data import datatypes


class LoggedOracleAgent(tf.Module):
    """Log replay with constant-velocity gap filling; every rollout is the same."""

    def __init__(self):
        super().__init__(name="logged_oracle_agent")

    def simulate(self, scene: dict, seed: tf.Tensor, num_rollouts: int) -> tf.Tensor:
        """Scene-frame [B, R, A, 80, 4]; `seed` is unused."""
        del seed
        valid = scene["agent_valid"]  # [B, A, S]
        steps = tf.range(datatypes.NUM_STEPS)
        # Index of the last valid step at or before each step (-1 before the first valid one;
        # never the case for s >= CURRENT_INDEX on a real agent, which is valid there).
        marked = tf.where(valid, steps, -1)
        last = tf.scan(tf.maximum, tf.transpose(marked, [2, 0, 1]))  # [S, B, A]
        last = tf.transpose(last, [1, 2, 0])[..., datatypes.CURRENT_INDEX + 1 :]  # [B, A, T]
        last = tf.maximum(last, 0)  # padding rows: harmless index, masked by the caller.

        def gather(x):
            return tf.gather(x, last, axis=2, batch_dims=2)

        future = tf.range(datatypes.CURRENT_INDEX + 1, datatypes.NUM_STEPS)  # [T]
        gap = tf.cast(future - last, tf.float32) * DT  # [B, A, T] seconds since last valid
        xy = gather(scene["agent_xy"]) + gather(scene["agent_vel"]) * gap[..., tf.newaxis]
        z = gather(scene["agent_z"])
        heading = gather(scene["agent_heading"])
        traj = tf.concat([xy, z[..., tf.newaxis], heading[..., tf.newaxis]], axis=-1)
        traj = traj[:, tf.newaxis]  # [B, 1, A, T, 4]
        shape = tf.concat([tf.shape(traj)[:1], [num_rollouts], tf.shape(traj)[2:]], axis=0)
        return tf.broadcast_to(traj, shape)
