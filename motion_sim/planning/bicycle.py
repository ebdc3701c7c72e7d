"""Kinematic bicycle driven by curvature and acceleration (the AV's dynamics)."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.planning.candidates import MAX_ACCEL, MAX_CURVATURE


def bicycle_step(state: tf.Tensor, curvature: tf.Tensor, accel: tf.Tensor, dt: float) -> tf.Tensor:
    """One step of (x, y, heading, speed) [..., 4] under curvature, accel [...] for dt seconds.

    Speed is clamped at 0 (braking stops the car, never reverses it); curvature and acceleration
    are clipped to the common simulator limits. The update uses the step's mean speed and mid-
    step heading, exact for constant curvature at constant speed up to second order.
    """
    x, y, heading, speed = tf.unstack(state, axis=-1)
    curvature = tf.clip_by_value(curvature, -MAX_CURVATURE, MAX_CURVATURE)
    accel = tf.clip_by_value(accel, -MAX_ACCEL, MAX_ACCEL)
    new_speed = tf.maximum(speed + accel * dt, 0.0)
    mean_speed = 0.5 * (speed + new_speed)
    turn = curvature * mean_speed * dt
    mid = heading + 0.5 * turn
    return tf.stack(
        [
            x + mean_speed * tf.cos(mid) * dt,
            y + mean_speed * tf.sin(mid) * dt,
            heading + turn,
            new_speed,
        ],
        axis=-1,
    )


def bicycle_rollout(state, curvature, accel, num_steps: int, dt: float) -> tf.Tensor:
    """States [..., num_steps, 4] after each of num_steps steps holding curvature and accel."""
    out = []
    for _ in range(num_steps):
        state = bicycle_step(state, curvature, accel, dt)
        out.append(state)
    return tf.stack(out, axis=-2)
