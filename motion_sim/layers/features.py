"""Normalised input features of scene entities (shared by the encoders and the decoder).

Scales keep typical scene-frame values O(1): positions within ~100 m, speeds within ~30 m/s,
sizes within ~10 m.
"""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes

POSITION_SCALE = 50.0  # m
SPEED_SCALE = 10.0  # m/s
SIZE_SCALE = 5.0  # m
NUM_AGENT_TYPES = len(datatypes.AgentType)


def agent_step_features(xy, heading, vel, valid) -> tf.Tensor:
    """Per agent-step features [..., S, 7]: xy, cos/sin heading, velocity, valid.

    Invalid steps are zeroed (the log holds arbitrary values there) and flagged by `valid`.
    """
    valid_f = tf.cast(valid, tf.float32)[..., None]
    feats = tf.concat(
        [
            tf.cast(xy, tf.float32) / POSITION_SCALE,
            tf.cos(tf.cast(heading, tf.float32))[..., None],
            tf.sin(tf.cast(heading, tf.float32))[..., None],
            tf.cast(vel, tf.float32) / SPEED_SCALE,
        ],
        axis=-1,
    )
    return tf.concat([feats * valid_f, valid_f], axis=-1)


def agent_static_features(size, agent_type) -> tf.Tensor:
    """[..., 8]: size / SIZE_SCALE and a one-hot `AgentType`."""
    return tf.concat(
        [
            tf.cast(size, tf.float32) / SIZE_SCALE,
            tf.one_hot(tf.cast(agent_type, tf.int32), NUM_AGENT_TYPES),
        ],
        axis=-1,
    )


def masked_max(x: tf.Tensor, mask: tf.Tensor, axis: int) -> tf.Tensor:
    """Max over `axis` of x [..., K, C] where mask [..., K] is True; 0 where nothing is valid."""
    neg = tf.constant(-1e4, x.dtype)  # finite: representable in bfloat16 and float16
    pooled = tf.reduce_max(tf.where(mask[..., None], x, neg), axis=axis)
    any_valid = tf.reduce_any(mask, axis=axis)[..., None]
    return tf.where(any_valid, pooled, tf.zeros_like(pooled))
