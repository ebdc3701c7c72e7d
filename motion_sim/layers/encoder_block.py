"""Pre-norm transformer encoder block (self-attention over scene tokens + FFN)."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.layers.attention import Attention


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class EncoderBlock(tf.keras.layers.Layer):
    """x + SelfAttn(LN(x)); x + FFN(LN(x)).

    Args:
      num_heads, key_dim: attention heads and per-head width.
      ffn_dim: FFN hidden width.
      dropout: residual / attention dropout.
      activation: FFN activation.
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        ffn_dim: int,
        dropout: float = 0.0,
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim, self.ffn_dim = num_heads, key_dim, ffn_dim
        self.dropout, self.activation = dropout, activation
        self.norm1 = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="norm1")
        self.attn = Attention(num_heads, key_dim, dropout, name="self_attention")
        self.norm2 = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="norm2")
        self.ffn_in = tf.keras.layers.Dense(ffn_dim, activation=activation, name="ffn_in")
        self.ffn_out = None
        self.drop = tf.keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.ffn_out = tf.keras.layers.Dense(input_shape[-1], name="ffn_out")
        super().build(input_shape)

    def call(self, x, bias, training=None):
        """x [B, N, D], bias [B, 1, 1|N, N] float32 (padding) -> [B, N, D]."""
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, bias, training=training), training=training)
        h = self.ffn_out(self.ffn_in(self.norm2(x)))
        return x + self.drop(h, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            activation=self.activation,
        )
        return config
