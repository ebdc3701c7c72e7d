"""The AV's logged path: distance to it and its local direction (route terms R and P)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

_MIN_SEGMENT = 0.01  # m; shorter logged steps (a parked SDC) carry no direction


class LoggedPath(NamedTuple):
    """Segments between consecutive valid logged positions of the AV (scene frame).

    Attributes:
      start, end: [S, 2] float32 segment end points.
      valid: [S] bool both ends logged.
    """

    start: np.ndarray
    end: np.ndarray
    valid: np.ndarray

    @classmethod
    def from_log(cls, xy: np.ndarray, valid: np.ndarray) -> "LoggedPath":
        """xy [S, 2], valid [S] (all 91 steps, history included) -> the path."""
        xy = np.asarray(xy, np.float32)
        valid = np.asarray(valid, bool)
        return cls(xy[:-1], xy[1:], valid[:-1] & valid[1:])


def nearest_on_path(points: tf.Tensor, path: LoggedPath):
    """(distance [...], unit direction [..., 2]) of points [..., 2] to / along the path.

    Distance: to the nearest valid segment. Direction: of the nearest valid segment longer
    than 1 cm (zero when there is none, e.g. an SDC parked through the whole log). `path`
    may hold numpy arrays or tensors (inside a compiled planner).
    """
    start = tf.cast(path.start, tf.float32)
    seg = tf.cast(path.end, tf.float32) - start
    valid = tf.cast(path.valid, tf.bool)
    length2 = tf.reduce_sum(seg * seg, axis=-1)
    rel = points[..., None, :] - start  # [..., S, 2]
    t = tf.clip_by_value(tf.math.divide_no_nan(tf.reduce_sum(rel * seg, -1), length2), 0.0, 1.0)
    dist = tf.norm(rel - seg * t[..., None], axis=-1)  # [..., S]
    big = tf.constant(1e9, dist.dtype)
    dist = tf.where(valid, dist, big)
    moving = valid & (length2 > _MIN_SEGMENT**2)
    nearest = tf.argmin(tf.where(moving, dist, big), axis=-1, output_type=tf.int32)
    direction = tf.math.divide_no_nan(seg, tf.sqrt(length2)[:, None])
    direction = tf.where(tf.reduce_any(moving), tf.gather(direction, nearest), 0.0)
    return tf.reduce_min(dist, axis=-1), direction
