"""One scene token per traffic light per history step (the Wayformer encoder's light tokens)."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.layers import features
from motion_sim.layers.mlp import MLP

_H = datatypes.NUM_HISTORY_STEPS


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class TrafficLightHistoryEncoder(tf.keras.layers.Layer):
    """Traffic lights over the history -> tokens [B, 11 * L, D], mask [B, 11 * L].

    Token = MLP(stop-point position) + embedding(`TrafficLightState`) + embedding(time step),
    so a light that turned red a second ago differs from one that has been red all along
    (`TrafficLightEncoder` reads the current step only). Future steps are not read.

    Args:
      hidden: output width D; mlp_width: hidden width; activation.
    Call:
      scene: dict with tl_xy [B, 91, L, 2], tl_state [B, 91, L], tl_valid [B, 91, L].
      Returns tokens (step-major: index t * L + l) and mask = tl_valid at step t.
    """

    def __init__(self, hidden: int, mlp_width: int, activation: str = "relu", **kwargs):
        kwargs.setdefault("autocast", False)  # raw positions stay float32 (see SceneEncoder)
        super().__init__(**kwargs)
        self.hidden, self.mlp_width, self.activation = hidden, mlp_width, activation
        self.position_mlp = MLP([mlp_width, hidden], activation, name="position_mlp")
        self.state_embedding = tf.keras.layers.Embedding(
            datatypes.NUM_TRAFFIC_LIGHT_STATES, hidden, name="state_embedding"
        )
        self.time_embedding = tf.keras.layers.Embedding(_H, hidden, name="time_embedding")

    def call(self, scene):
        xy = tf.cast(scene["tl_xy"][:, :_H], tf.float32) / features.POSITION_SCALE
        mask = tf.cast(scene["tl_valid"][:, :_H], tf.bool)  # [B, 11, L]
        state = tf.cast(scene["tl_state"][:, :_H], tf.int32)
        token = (
            self.position_mlp(xy)
            + self.state_embedding(state)
            + self.time_embedding(tf.range(_H))[None, :, None]
        )
        token = tf.where(mask[..., None], token, tf.zeros_like(token))
        shape = tf.shape(token)
        return (
            tf.reshape(token, [shape[0], shape[1] * shape[2], self.hidden]),
            tf.reshape(mask, [shape[0], shape[1] * shape[2]]),
        )

    def get_config(self):
        config = super().get_config()
        config.update(hidden=self.hidden, mlp_width=self.mlp_width, activation=self.activation)
        return config
