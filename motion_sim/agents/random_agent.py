"""Random sim agent: a kinematic unicycle driven by random accelerations and yaw rates.

A lower bound for the realism metrics that still moves like a road user (no sideways drift, no
reversing): the speed changes by a random longitudinal acceleration, the heading by a random
yaw rate that fades out at walking speed (a parked car does not spin in place).
"""

from __future__ import annotations

import tensorflow as tf

from motion_sim.agents.constant_velocity import DT
from motion_sim.data import datatypes


class RandomAgent(tf.Module):
    """Seeded random-acceleration baseline; rollouts differ, the same seed repeats exactly.

    Attributes:
      accel_std: std of the per-step longitudinal acceleration (m/s^2).
      yaw_rate_std: std of the per-step yaw rate at speed (rad/s).
      full_turn_speed: speed (m/s) from which the yaw rate is no longer damped.
    """

    def __init__(
        self, accel_std: float = 1.0, yaw_rate_std: float = 0.3, full_turn_speed: float = 2.0
    ):
        super().__init__(name="random_agent")
        self.accel_std = float(accel_std)
        self.yaw_rate_std = float(yaw_rate_std)
        self.full_turn_speed = float(full_turn_speed)

    def simulate(self, scene: dict, seed: tf.Tensor, num_rollouts: int) -> tf.Tensor:
        """Scene-frame [B, R, A, 80, 4] from stateless noise keyed by `seed` (int64 [2])."""
        i = datatypes.CURRENT_INDEX
        xy = scene["agent_xy"][:, tf.newaxis, :, i]  # [B, 1, A, 2]
        z = scene["agent_z"][:, tf.newaxis, :, i]  # [B, 1, A]
        heading0 = scene["agent_heading"][:, tf.newaxis, :, i]
        speed0 = tf.norm(scene["agent_vel"][:, tf.newaxis, :, i], axis=-1)
        batch, num_agents = tf.shape(xy)[0], tf.shape(xy)[2]
        steps = datatypes.NUM_FUTURE_STEPS
        noise = tf.random.stateless_normal(
            tf.stack([batch, num_rollouts, num_agents, steps, 2]), seed=seed
        )  # [B, R, A, T, 2]
        accel = noise[..., 0] * self.accel_std
        # The speed is clipped at 0 after summing: agents may stop but never reverse.
        speed = tf.nn.relu(speed0[..., tf.newaxis] + tf.cumsum(accel, axis=-1) * DT)
        turn_gain = tf.minimum(speed / self.full_turn_speed, 1.0)
        yaw_rate = noise[..., 1] * self.yaw_rate_std * turn_gain
        heading = heading0[..., tf.newaxis] + tf.cumsum(yaw_rate, axis=-1) * DT  # [B, R, A, T]
        step = tf.stack([tf.cos(heading), tf.sin(heading)], axis=-1) * (speed * DT)[..., tf.newaxis]
        pos = xy[..., tf.newaxis, :] + tf.cumsum(step, axis=-2)  # [B, R, A, T, 2]
        z_t = tf.broadcast_to(z[..., tf.newaxis], tf.shape(heading))
        return tf.concat([pos, z_t[..., tf.newaxis], heading[..., tf.newaxis]], axis=-1)
