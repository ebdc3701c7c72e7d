"""Latent-query cross-attention block: K learned queries summarise a long token sequence."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.layers.attention import Attention


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class LatentQueryBlock(tf.keras.layers.Layer):
    """latents + CrossAttn(LN(latents), LN(tokens)); + FFN(LN(.)) (pre-norm, Perceiver style).

    Wayformer's latent query attention: the scene's thousands of fused tokens are read once by
    `num_latents` learned queries, and everything after (the latent self-attention blocks and
    the decoder's cross-attention) works on those K tokens, so its cost does not grow with the
    number of agent-steps.

    Args:
      num_latents: K; num_heads, key_dim: attention; ffn_dim; dropout; activation.
    Call:
      tokens [B, N, D], bias [B, 1, 1, N] float32 (padding) -> latents [B, K, D].
    """

    def __init__(
        self,
        num_latents: int,
        num_heads: int,
        key_dim: int,
        ffn_dim: int,
        dropout: float = 0.0,
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_latents, self.num_heads, self.key_dim = num_latents, num_heads, key_dim
        self.ffn_dim, self.dropout, self.activation = ffn_dim, dropout, activation
        self.latents = None
        self.query_norm = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="query_norm")
        self.token_norm = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="token_norm")
        self.attn = Attention(num_heads, key_dim, dropout, name="cross_attention")
        self.ffn_norm = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="ffn_norm")
        self.ffn_in = tf.keras.layers.Dense(ffn_dim, activation=activation, name="ffn_in")
        self.ffn_out = None
        self.drop = tf.keras.layers.Dropout(dropout)

    def build(self, input_shape):
        width = input_shape[-1]
        self.latents = self.add_weight(
            "latents",
            [self.num_latents, width],
            initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self.ffn_out = tf.keras.layers.Dense(width, name="ffn_out")
        super().build(input_shape)

    def call(self, tokens, bias, training=None):
        batch = tf.shape(tokens)[0]
        x = tf.tile(tf.cast(self.latents, tokens.dtype)[None], [batch, 1, 1])
        h = self.attn(self.query_norm(x), self.token_norm(tokens), bias, training=training)
        x = x + self.drop(h, training=training)
        h = self.ffn_out(self.ffn_in(self.ffn_norm(x)))
        return x + self.drop(h, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_latents=self.num_latents,
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            activation=self.activation,
        )
        return config
