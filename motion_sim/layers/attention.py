"""Multi-head attention with separately callable projections (for KV caching)."""

from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class Attention(tf.keras.layers.Layer):
    """Multi-head scaled dot-product attention.

    The query, key and value projections share ONE kernel [D, 3, H, d]: self-attention projects
    all three with a single matmul (3x wider, so closer to the matmul roofline than three thin
    ones, and the normalised input is read once); cross-attention and the cached decoder use
    slices of it. The kernel is cast to the compute dtype explicitly, so mixed precision also
    holds when `project_*` / `attend` are called directly by the cached decoder (outside
    `__call__`). Scores are computed in the compute dtype and the softmax in float32.

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
        self.qkv_kernel = None  # [D, 3, H, d], D known at build time
        self._output_dense = None

    def build(self, query_shape, context_shape=None):
        width = query_shape[-1]
        # Glorot-uniform per q / k / v slice, as three separate [D, H, d] EinsumDense kernels
        # would be (fans of the [D, 3, H, d] shape are 3x larger, hence scale 3).
        self.qkv_kernel = self.add_weight(
            "qkv/kernel",
            [width, 3, self.num_heads, self.key_dim],
            initializer=tf.keras.initializers.VarianceScaling(3.0, "fan_avg", "uniform"),
        )
        self._output_dense = tf.keras.layers.EinsumDense(
            "bshe,hed->bsd", [None, width], name="output"
        )
        super().build(query_shape)

    def _kernel(self, which: slice) -> tf.Tensor:
        return tf.cast(self.qkv_kernel[:, which], self.compute_dtype)

    def _scale_query(self, q):
        return q * tf.cast(self.key_dim**-0.5, q.dtype)

    def project_query(self, x: tf.Tensor) -> tf.Tensor:
        """[B, Q, D] -> [B, Q, H, d], already scaled by 1/sqrt(d)."""
        x = tf.cast(x, self.compute_dtype)
        return self._scale_query(tf.einsum("bsd,dhe->bshe", x, self._kernel(0)))

    def project_kv(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[B, K, D] -> keys, values [B, H, K, d] (heads first, the layout caches keep)."""
        x = tf.cast(x, self.compute_dtype)
        kv = tf.einsum("bsd,dkhe->kbhse", x, self._kernel(slice(1, 3)))
        return kv[0], kv[1]

    def project_qkv(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Self-attention projections in one matmul: [B, S, D] -> (q [B, S, H, d] scaled,
        k [B, H, S, d], v [B, H, S, d])."""
        x = tf.cast(x, self.compute_dtype)
        qkv = tf.einsum("bsd,dkhe->kbshe", x, self._kernel(slice(0, 3)))
        return (
            self._scale_query(qkv[0]),
            tf.transpose(qkv[1], [0, 2, 1, 3]),
            tf.transpose(qkv[2], [0, 2, 1, 3]),
        )

    def attend(self, q, k, v, bias, training=None) -> tf.Tensor:
        """q [B, Q, H, d], k/v [B, H, K, d], bias broadcastable to [B, H, Q, K] (float32,
        0 = visible, MASK_VALUE = masked) -> [B, Q, D].

        Keys/values are heads-first so the two batched matmuls need no transpose of the
        (large) cached keys/values at every decoding step.
        """
        return self.project_output(self.attend_heads(q, k, v, bias, training=training))

    def attend_heads(self, q, k, v, bias, training=None) -> tf.Tensor:
        """`attend` before the output projection: [B, Q, H, d].

        The softmax is normalised AFTER the value matmul: exp(s - max) is multiplied by the values
        and the [B, Q, H, d] result divided by the row sums. Same maths as softmax-then-matmul,
        but the [B, H, Q, K] probabilities (the largest tensor of the layer, K up to T*A) are not
        read and written once more just to divide them -- on CPU that pass is memory-bound and
        costs about as much as a matmul. Dropout of the unnormalised weights then dividing equals
        dropout of the probabilities.
        """
        scores = tf.cast(tf.einsum("bqhd,bhkd->bhqk", q, k), tf.float32) + bias
        # Softmax is shift-invariant, so the max needs no gradient (exactly zero in theory).
        row_max = tf.stop_gradient(tf.reduce_max(scores, axis=-1, keepdims=True))
        weights = tf.exp(scores - row_max)  # [B, H, Q, K] float32, max 1 per row
        denom = tf.reduce_sum(weights, axis=-1)  # [B, H, Q] >= 1
        inv_denom = 1.0 / denom
        if self.dropout > 0.0 and training is not None and training is not False:
            keep, keep_prob = dropout_keep_mask(weights, self.dropout)
            dropped = tf.where(keep, weights, tf.zeros_like(weights))
            # The 1 / (1 - rate) scale goes on the small [B, H, Q] side.
            weights, inv_denom = tf.__internal__.smart_cond.smart_cond(
                training, lambda: (dropped, inv_denom / keep_prob), lambda: (weights, inv_denom)
            )
        out = tf.einsum("bhqk,bhkd->bqhd", tf.cast(weights, v.dtype), v)
        scale = tf.transpose(inv_denom, [0, 2, 1])[..., None]  # [B, Q, H, 1]
        return tf.cast(tf.cast(out, tf.float32) * scale, v.dtype)

    def attend_chunked(self, q, k, v, chunk_biases, training=None) -> tf.Tensor:
        """Self-attention in query chunks that each read only the key prefix they can see.

        Args:
          q: [B, S, H, d]; k, v: [B, H, S, d] (queries and keys are the same sequence).
          chunk_biases: sequence of float32 biases [B|1, 1, Q_i, K_i] for consecutive query
            chunks: chunk i holds queries [K_i - Q_i, K_i) and attends to keys [0, K_i), so
            keys after K_i must be masked for those queries (a causal structure) -- e.g.
            `masks.block_causal_chunk_biases`. One chunk [.., S, S] is plain attention.
        Returns: [B, S, H, d].

        With a causal mask about half of the [S, S] scores are masked; chunks skip most of them
        (matmuls, exp, dropout and memory traffic alike) and give the same result, because masked
        keys get exactly zero weight.
        """
        sizes, start = [], 0
        for bias in chunk_biases:
            nq, nk = bias.shape[-2], bias.shape[-1]
            if nq is None or nk is None or nk - nq != start:
                raise ValueError(
                    f"chunk biases must be static and consecutive: query rows "
                    f"[{start}, ..) but bias shape {bias.shape}"
                )
            sizes.append(nq)
            start = nk
        if start != q.shape[1]:
            raise ValueError(f"chunks cover {start} of {q.shape[1]} queries")
        if len(sizes) == 1:
            return self.attend_heads(q, k, v, chunk_biases[0], training=training)
        # split + concat rather than slices: their gradients are concat / split, not a
        # zero-padded full-size tensor per chunk summed with AddN.
        qs = tf.split(q, sizes, axis=1)
        ks, vs = tf.split(k, sizes, axis=2), tf.split(v, sizes, axis=2)
        outs = []
        for i, bias in enumerate(chunk_biases):
            k_i = ks[0] if i == 0 else tf.concat(ks[: i + 1], axis=2)
            v_i = vs[0] if i == 0 else tf.concat(vs[: i + 1], axis=2)
            outs.append(self.attend_heads(qs[i], k_i, v_i, bias, training=training))
        return tf.concat(outs, axis=1)

    def attend_folded(self, q, k_folded, v_folded) -> tf.Tensor:
        """Attention over keys/values that carry their mask and softmax denominator along.

        Args:
          q: [B, Q, H, d] scaled queries (`project_*`).
          k_folded: [B, H, K, d + 1] keys whose extra column is the key's additive bias
            (0 = visible, MASK_VALUE = masked; `fold_keys`).
          v_folded: [B, H, K, d + 1] values whose extra column is 1 (`fold_values`).
        Returns: [B, Q, H, d], the same as `attend_heads(q, k, v, bias)`.

        For decoding, where keys/values are written once and read at every later step. A
        constant 1 appended to the queries makes the score matmul add the key bias, and the
        ones column makes the value matmul return the softmax denominator next to the
        numerator: the two elementwise passes over the [B, H, Q, K] scores that `attend_heads`
        spends on the bias and on the row sums are gone (on CPU, a float row sum cannot be
        vectorised without reassociation and costs about as much as the score matmul).
        """
        ones = tf.ones(tf.concat([tf.shape(q)[:-1], [1]], axis=0), q.dtype)
        q = tf.concat([q, ones], axis=-1)
        scores = tf.cast(tf.einsum("bqhd,bhkd->bhqk", q, k_folded), tf.float32)
        row_max = tf.reduce_max(scores, axis=-1, keepdims=True)
        weights = tf.exp(scores - row_max)
        out = tf.cast(
            tf.einsum("bhqk,bhkd->bqhd", tf.cast(weights, v_folded.dtype), v_folded), tf.float32
        )
        return tf.cast(out[..., :-1] / out[..., -1:], v_folded.dtype)

    def project_output(self, heads: tf.Tensor) -> tf.Tensor:
        """[B, Q, H, d] -> [B, Q, D]."""
        return self._output_dense(heads)

    def call(self, query, context, bias, training=None):
        """query [B, Q, D], context [B, K, D] (None or `query` itself: self-attention),
        bias [B|1, 1|H, Q|1, K] -> [B, Q, D].

        `bias` may also be a list of causal chunk biases (`attend_chunked`); then the context
        must be the query sequence itself (self-attention).
        """
        if context is None or context is query:  # self-attention: one projection matmul
            q, k, v = self.project_qkv(query)
        else:
            q, (k, v) = self.project_query(query), self.project_kv(context)
        if isinstance(bias, (list, tuple)):
            return self.project_output(self.attend_chunked(q, k, v, bias, training=training))
        return self.attend(q, k, v, bias, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, key_dim=self.key_dim, dropout=self.dropout)
        return config


# Dropout keep decisions come from 16 random bits each: half the Philox work of a float32
# uniform per element (the attention weights are the largest tensors of a training step and
# their dropout cost more than all its matmuls on CPU). The rate is rounded to a multiple of
# 2**-16 (0.1 -> 0.100006).
_DROPOUT_BITS = 16


def dropout_keep_mask(x: tf.Tensor, rate: float):
    """(keep, keep_prob): keep is a bool tensor shaped like `x` (static last axis) with
    P(keep) = keep_prob = 1 - rate rounded to 16 bits.

    Fresh randomness every call: the stateless draw is seeded from the stateful global
    generator (like `tf.keras.layers.Dropout`; reproducible under `tf.random.set_seed`).
    """
    levels = 2**_DROPOUT_BITS
    threshold = int(round(rate * levels))
    last = x.shape[-1]
    if last is None:
        raise ValueError("dropout_keep_mask needs a static last axis")
    lead = tf.shape(x)[:-1]
    words = (last + 1) // 2  # two 16-bit draws per uint32 (one spare for an odd axis)
    seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    bits = tf.random.stateless_uniform(
        tf.concat([lead, [words]], axis=0), seed, dtype=tf.uint32, minval=None, maxval=None
    )
    bits = tf.reshape(tf.bitcast(bits, tf.uint16), tf.concat([lead, [2 * words]], axis=0))
    if 2 * words != last:
        bits = bits[..., :last]
    return bits >= tf.constant(threshold, tf.uint16), 1.0 - threshold / levels


def fold_keys(k: tf.Tensor, key_bias: tf.Tensor) -> tf.Tensor:
    """Keys [B, H, K, d] + float32 bias [B, K] (0 / MASK_VALUE) -> [B, H, K, d + 1]
    (`Attention.attend_folded`)."""
    bias = tf.cast(key_bias, k.dtype)[:, None, :, None]
    return tf.concat([k, tf.broadcast_to(bias, tf.concat([tf.shape(k)[:-1], [1]], 0))], -1)


def fold_values(v: tf.Tensor) -> tf.Tensor:
    """Values [B, H, K, d] -> [B, H, K, d + 1] with a ones column (`Attention.attend_folded`)."""
    return tf.concat([v, tf.ones(tf.concat([tf.shape(v)[:-1], [1]], 0), v.dtype)], -1)
