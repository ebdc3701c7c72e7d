"""One scene token per agent per history step (the Wayformer encoder's agent tokens)."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.layers import features
from motion_sim.layers.mlp import MLP

_H = datatypes.NUM_HISTORY_STEPS


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class AgentStepEncoder(tf.keras.layers.Layer):
    """Agent history -> one token per (agent, history step), as Wayformer tokenises it.

    Token = MLP(step features + static features) + embedding(time step). Unlike
    `AgentHistoryEncoder` (one token per agent), the temporal structure is left to attention:
    the encoder sees A * 11 agent tokens.

    Args:
      hidden: output width D; mlp_width: hidden width; mlp_layers: hidden layers; activation.
    Call:
      scene: dict with agent_xy [B, A, 91, 2], agent_heading [B, A, 91], agent_vel [B, A, 91, 2],
        agent_valid [B, A, 91], agent_mask [B, A], agent_size [B, A, 3], agent_type [B, A].
      Returns (tokens [B, A * 11, D] (agent-major: index a * 11 + t), mask [B, A * 11] bool =
      agent_mask & valid at step t). Only the history (0..10) is read; invalid tokens are 0.
    """

    def __init__(
        self, hidden: int, mlp_width: int, mlp_layers: int = 2, activation: str = "relu", **kwargs
    ):
        kwargs.setdefault("autocast", False)  # raw positions stay float32 (see SceneEncoder)
        super().__init__(**kwargs)
        self.hidden, self.mlp_width, self.mlp_layers = hidden, mlp_width, mlp_layers
        self.activation = activation
        self.mlp = MLP([mlp_width] * mlp_layers + [hidden], activation, name="mlp")
        self.time_embedding = tf.keras.layers.Embedding(_H, hidden, name="time_embedding")

    def call(self, scene):
        steps = features.agent_step_features(
            scene["agent_xy"][:, :, :_H],
            scene["agent_heading"][:, :, :_H],
            scene["agent_vel"][:, :, :_H],
            scene["agent_valid"][:, :, :_H],
        )  # [B, A, 11, 7]
        static = features.agent_static_features(scene["agent_size"], scene["agent_type"])
        static = tf.broadcast_to(
            static[:, :, None], tf.concat([tf.shape(steps)[:3], tf.shape(static)[-1:]], axis=0)
        )
        token = self.mlp(tf.concat([steps, static], axis=-1)) + self.time_embedding(tf.range(_H))
        mask = (
            tf.cast(scene["agent_valid"][:, :, :_H], tf.bool)
            & tf.cast(scene["agent_mask"], tf.bool)[:, :, None]
        )
        token = tf.where(mask[..., None], token, tf.zeros_like(token))
        shape = tf.shape(token)
        return (
            tf.reshape(token, [shape[0], shape[1] * _H, self.hidden]),
            tf.reshape(mask, [shape[0], shape[1] * _H]),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden=self.hidden,
            mlp_width=self.mlp_width,
            mlp_layers=self.mlp_layers,
            activation=self.activation,
        )
        return config
