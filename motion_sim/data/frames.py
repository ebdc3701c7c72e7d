"""The scene frame: world <-> scene transforms and angle wrapping, one implementation each.

Frame: origin at the SDC's position at CURRENT_INDEX, x axis along its heading then.
    world_xy = R(frame_yaw) @ scene_xy + frame_origin[:2],  world_heading = scene_heading + yaw
The frame is kept in float64 so `to_world(to_scene(p)) == p` to ~1e-9 m; what limits the
world round trip is the float32 scene-frame storage (~3e-5 m at 500 m from the SDC).

`to_scene` / `to_world` are the numpy versions (preprocessing, metrics, pictures);
`to_world_tf` is the in-graph one (the sampler, the exported serving signature).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from motion_sim.data.datatypes import scene_fields


def wrap_angle(angle):
    """Wraps radians to [-pi, pi): numpy arrays (or lists, floats) and tf.Tensors alike."""
    if not tf.is_tensor(angle):
        angle = np.asarray(angle)
    return (angle + math.pi) % (2.0 * math.pi) - math.pi  # `%` is floormod for tensors too


def _frame(scene_or_frame):
    """(origin_xy [..., 2], yaw [...]) float64 from a Scene/dict with frame_origin, frame_yaw."""
    fields = scene_fields(scene_or_frame)
    origin, yaw = fields["frame_origin"], fields["frame_yaw"]
    return np.asarray(origin, np.float64)[..., :2], np.asarray(yaw, np.float64)


def _expand(frame_value: np.ndarray, ndim: int) -> np.ndarray:
    """Appends singleton axes so a frame value with the scene's leading (batch) axes broadcasts
    against an array with `ndim` dims whose leading axes are those same batch axes."""
    return frame_value.reshape(frame_value.shape + (1,) * (ndim - frame_value.ndim))


def _broadcast_frame(xy, heading, scene):
    """float64 xy/heading plus the scene's origin [..., 2] and yaw (cos, sin) broadcast to them."""
    xy = np.asarray(xy, np.float64)
    heading = np.asarray(heading, np.float64)
    origin, yaw = _frame(scene)
    yaw_h = _expand(yaw, heading.ndim)
    origin = origin.reshape(origin.shape[:-1] + (1,) * (heading.ndim - yaw.ndim) + (2,))
    return xy, heading, origin, yaw_h, np.cos(yaw_h), np.sin(yaw_h)


def to_scene(xy, heading, scene):
    """World (xy [..., 2], heading [...]) -> scene frame, float64.

    `scene` is a Scene (or a dict of its fields), batched or not; its batch axes must lead
    `heading`'s axes (e.g. xy [B, A, S, 2] with a scene batch of B).
    """
    xy, heading, origin, yaw_h, cos, sin = _broadcast_frame(xy, heading, scene)
    d = xy - origin
    x = cos * d[..., 0] + sin * d[..., 1]
    y = -sin * d[..., 0] + cos * d[..., 1]
    return np.stack([x, y], axis=-1), wrap_angle(heading - yaw_h)


def to_world(xy, heading, scene):
    """Scene-frame (xy [..., 2], heading [...]) -> world frame, float64 (inverse of to_scene)."""
    xy, heading, origin, yaw_h, cos, sin = _broadcast_frame(xy, heading, scene)
    x = cos * xy[..., 0] - sin * xy[..., 1]
    y = sin * xy[..., 0] + cos * xy[..., 1]
    return np.stack([x, y], axis=-1) + origin, wrap_angle(heading + yaw_h)


def to_world_tf(
    xy: tf.Tensor, heading: tf.Tensor, frame_origin: tf.Tensor, frame_yaw: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """In-graph scene frame -> world: R(yaw) xy + origin[:2], heading + yaw, in float64.

    xy [B, ..., 2], heading [B, ...]; frame_origin [B, 3] (or [B, 2]), frame_yaw [B].
    Returns float64 world xy [B, ..., 2] and heading [B, ...] wrapped to [-pi, pi). float64
    because world coordinates reach 1e4 m where float32 steps are ~1 mm.
    """
    yaw = tf.cast(frame_yaw, tf.float64)
    origin = tf.cast(frame_origin, tf.float64)[:, :2]
    extra = len(xy.shape) - 2  # axes between batch and the xy pair
    yaw = tf.reshape(yaw, [-1] + [1] * extra)
    origin = tf.reshape(origin, [-1] + [1] * extra + [2])
    x, y = tf.unstack(tf.cast(xy, tf.float64), axis=-1)
    c, s = tf.cos(yaw), tf.sin(yaw)
    world = tf.stack([c * x - s * y, s * x + c * y], axis=-1) + origin
    return world, wrap_angle(tf.cast(heading, tf.float64) + yaw)
