"""Multi-head attention with separately callable projections (for KV caching)."""
from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class Attention(tf.keras.layers.Layer):
    """Multi-head scaled dot-product attention.

    Projections are EinsumDense sublayers called through `__call__`, so mixed precision autocasts
    them even when `project_query` / `project_kv` / `attend` are called directly by the cached
    decoder. Scores are computed in the compute dtype and the softmax in float32.

    Args:
      num_heads: H.
      key_dim: per-head width d.
      dropout: dropout rate on the attention probabilities (training only).
    """

    def __init__(self, num_heads: int, key_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        hk = [None, num_heads, key_dim]  # output dims after the batch axis
        self.query_dense = tf.keras.layers.EinsumDense("bsd,dhe->bshe", hk, name="query")
        self.key_dense = tf.keras.layers.EinsumDense("bsd,dhe->bshe", hk, name="key")
        self.value_dense = tf.keras.layers.EinsumDense("bsd,dhe->bshe", hk, name="value")
        self.dropout_layer = tf.keras.layers.Dropout(dropout)
        self._output_dense = None  # needs the model width, known at build time

    def build(self, query_shape, context_shape=None):
        width = query_shape[-1]
        self._output_dense = tf.keras.layers.EinsumDense("bshe,hed->bsd", [None, width],
                                                         name="output")
        super().build(query_shape)

    def project_query(self, x: tf.Tensor) -> tf.Tensor:
        """[B, Q, D] -> [B, Q, H, d], already scaled by 1/sqrt(d)."""
        q = self.query_dense(x)
        return q * tf.cast(self.key_dim ** -0.5, q.dtype)

    def project_kv(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[B, K, D] -> keys, values [B, H, K, d] (heads first, the layout caches keep)."""
        k = tf.transpose(self.key_dense(x), [0, 2, 1, 3])
        v = tf.transpose(self.value_dense(x), [0, 2, 1, 3])
        return k, v

    def attend(self, q, k, v, bias, training=None) -> tf.Tensor:
        """q [B, Q, H, d], k/v [B, H, K, d], bias broadcastable to [B, H, Q, K] (float32,
        0 = visible, MASK_VALUE = masked) -> [B, Q, D].

        Keys/values are heads-first so the two batched matmuls need no transpose of the
        (large) cached keys/values at every decoding step.
        """
        return self.project_output(self.attend_heads(q, k, v, bias, training=training))

    def attend_heads(self, q, k, v, bias, training=None) -> tf.Tensor:
        """`attend` before the output projection: [B, Q, H, d]."""
        scores = tf.einsum("bqhd,bhkd->bhqk", q, k)
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + bias, axis=-1)
        probs = self.dropout_layer(probs, training=training)
        return tf.einsum("bhqk,bhkd->bqhd", tf.cast(probs, v.dtype), v)

    def project_output(self, heads: tf.Tensor) -> tf.Tensor:
        """[B, Q, H, d] -> [B, Q, D]."""
        return self._output_dense(heads)

    def call(self, query, context, bias, training=None):
        """query [B, Q, D], context [B, K, D], bias [B|1, 1|H, Q|1, K] -> [B, Q, D]."""
        k, v = self.project_kv(context)
        return self.attend(self.project_query(query), k, v, bias, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, key_dim=self.key_dim, dropout=self.dropout)
        return config
