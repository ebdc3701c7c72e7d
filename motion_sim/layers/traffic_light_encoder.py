"""One scene token per traffic light at the current step."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.layers import features
from motion_sim.layers.mlp import MLP

_CUR = datatypes.CURRENT_INDEX


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class TrafficLightEncoder(tf.keras.layers.Layer):
    """Traffic lights at CURRENT_INDEX -> tokens [B, L, D], mask [B, L].

    Token = MLP(stop-point position) + embedding(`TrafficLightState`). Only the current step is
    read: future light states are not known to the policy.

    Args:
      hidden: output width D; mlp_width: hidden width; activation.
    Call:
      scene: dict with tl_xy [B, 91, L, 2], tl_state [B, 91, L], tl_valid [B, 91, L].
    """

    def __init__(self, hidden: int, mlp_width: int, activation: str = "relu", **kwargs):
        # Raw scene inputs stay float32: autocasting positions of ~100 m to bfloat16 under
        # mixed precision would round them to ~0.5 m. The MLPs cast normalised features.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.hidden, self.mlp_width, self.activation = hidden, mlp_width, activation
        self.position_mlp = MLP([mlp_width, hidden], activation, name="position_mlp")
        self.state_embedding = tf.keras.layers.Embedding(
            datatypes.NUM_TRAFFIC_LIGHT_STATES, hidden, name="state_embedding"
        )

    def call(self, scene):
        xy = tf.cast(scene["tl_xy"][:, _CUR], tf.float32) / features.POSITION_SCALE
        mask = tf.cast(scene["tl_valid"][:, _CUR], tf.bool)
        state = tf.cast(scene["tl_state"][:, _CUR], tf.int32)
        token = self.position_mlp(xy) + self.state_embedding(state)
        return tf.where(mask[..., None], token, tf.zeros_like(token)), mask

    def get_config(self):
        config = super().get_config()
        config.update(hidden=self.hidden, mlp_width=self.mlp_width, activation=self.activation)
        return config
