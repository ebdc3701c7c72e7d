"""One scene token per agent from its 11 history steps."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.layers import features
from motion_sim.layers.mlp import MLP

_H = datatypes.NUM_HISTORY_STEPS


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class AgentHistoryEncoder(tf.keras.layers.Layer):
    """Agent history -> one token per agent.

    Design: the history has a fixed, short, ordered length (11 steps), so the per-step features
    are concatenated in time order and encoded by an MLP. Unlike a per-step MLP + temporal
    max-pool, this keeps the order (the MLP reads accelerations and turns off differences of
    consecutive steps directly), and one token per agent instead of one per agent-step keeps
    the scene at N = 128 + 256 + 32 = 416 tokens rather than 1,696, which is what makes
    self-attention over the whole scene cheap.

    Args:
      hidden: output width D.
      mlp_width: hidden width of the MLP; mlp_layers: number of hidden layers.
      activation: hidden activation.
    Call:
      scene: dict with agent_xy [B, A, 91, 2], agent_heading [B, A, 91], agent_vel [B, A, 91, 2],
        agent_valid [B, A, 91], agent_size [B, A, 3], agent_type [B, A].
      Returns [B, A, D]. Only the history (indices 0..10) is read: no future leaks in.
    """

    def __init__(
        self, hidden: int, mlp_width: int, mlp_layers: int = 2, activation: str = "relu", **kwargs
    ):
        # Raw scene inputs stay float32: autocasting positions of ~100 m to bfloat16 under
        # mixed precision would round them to ~0.5 m. The MLPs cast normalised features.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.hidden, self.mlp_width, self.mlp_layers = hidden, mlp_width, mlp_layers
        self.activation = activation
        self.mlp = MLP([mlp_width] * mlp_layers + [hidden], activation, name="mlp")

    def call(self, scene):
        steps = features.agent_step_features(
            scene["agent_xy"][:, :, :_H],
            scene["agent_heading"][:, :, :_H],
            scene["agent_vel"][:, :, :_H],
            scene["agent_valid"][:, :, :_H],
        )  # [B, A, 11, 7]
        shape = tf.shape(steps)
        flat = tf.reshape(steps, [shape[0], shape[1], _H * steps.shape[-1]])
        static = features.agent_static_features(scene["agent_size"], scene["agent_type"])
        return self.mlp(tf.concat([flat, static], axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden=self.hidden,
            mlp_width=self.mlp_width,
            mlp_layers=self.mlp_layers,
            activation=self.activation,
        )
        return config
