"""Constant-velocity sim agent: every agent keeps its current velocity and heading."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes

DT = 1.0 / datatypes.STEP_HZ


def constant_velocity_trajectory(
    xy: tf.Tensor,
    z: tf.Tensor,
    vel: tf.Tensor,
    heading: tf.Tensor,
    num_steps: int = datatypes.NUM_FUTURE_STEPS,
) -> tf.Tensor:
    """(x, y, z, heading) [..., num_steps, 4] for steps 1..num_steps after the given state.

    Args (any float dtype, shared leading shape [...]):
      xy: [..., 2] position; z: [...] height; vel: [..., 2] velocity (m/s); heading: [...] yaw.

    Used both by `ConstantVelocityAgent` (scene frame, float32) and by the submission writer's
    fallback for agents a model did not hold (world frame, float64), so both agree exactly.
    """
    t = tf.range(1, num_steps + 1, dtype=xy.dtype) * tf.constant(DT, xy.dtype)  # [T]
    pos = xy[..., tf.newaxis, :] + vel[..., tf.newaxis, :] * t[:, tf.newaxis]  # [..., T, 2]
    ones = tf.ones_like(t)
    z_t = z[..., tf.newaxis] * ones
    heading_t = heading[..., tf.newaxis] * ones
    return tf.concat([pos, z_t[..., tf.newaxis], heading_t[..., tf.newaxis]], axis=-1)


class ConstantVelocityAgent(tf.Module):
    """Extrapolates the state at CURRENT_INDEX with constant velocity; all rollouts agree."""

    def __init__(self):
        super().__init__(name="constant_velocity_agent")

    def simulate(self, scene: dict, seed: tf.Tensor, num_rollouts: int) -> tf.Tensor:
        """Scene-frame [B, R, A, 80, 4]; `seed` is unused (the baseline is deterministic)."""
        del seed
        i = datatypes.CURRENT_INDEX
        traj = constant_velocity_trajectory(
            scene["agent_xy"][:, :, i],
            scene["agent_z"][:, :, i],
            scene["agent_vel"][:, :, i],
            scene["agent_heading"][:, :, i],
        )  # [B, A, T, 4]
        traj = traj[:, tf.newaxis]
        shape = tf.concat([tf.shape(traj)[:1], [num_rollouts], tf.shape(traj)[2:]], axis=0)
        return tf.broadcast_to(traj, shape)
