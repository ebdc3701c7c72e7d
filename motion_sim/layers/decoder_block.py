"""Pre-norm transformer decoder block with a KV-cached single-step path.

Sequence layout: decoding step t holds the A agents of one joint action step; the flattened
position of (t, a) is p = t * A + a. The self-attention KV cache of a block is ONE preallocated
tensor [B', 2, H, T, A, d + 1] (keys, values; heads first, see `Attention.attend`) whose slot t
is written at step t with `tensor_scatter_nd_update` (in place under XLA), so its shape is
static across the decoding loop (one XLA program, no shape invariants). Keys and values are
stored folded (`attention.fold_keys` / `fold_values`): each key carries its attention bias
(padded agents, and every slot not yet written, hold MASK_VALUE) and each value a 1, so a cached
step needs no mask tensor and gets its softmax denominators from the value matmul.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from motion_sim.layers import masks
from motion_sim.layers.attention import Attention, fold_keys, fold_values

# Most distinct (static) key-prefix lengths the cached self-attention compiles.
_MAX_PREFIX_BUCKETS = 8


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class DecoderBlock(tf.keras.layers.Layer):
    """x + SelfAttn(LN(x)) [block-causal]; x + CrossAttn(LN(x), scene); x + FFN(LN(x)).

    Args:
      num_heads, key_dim: attention heads and per-head width.
      ffn_dim: FFN hidden width.
      dropout: residual / attention dropout (full pass only; the cached step is inference).
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
        self.self_attn = Attention(num_heads, key_dim, dropout, name="self_attention")
        self.norm2 = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="norm2")
        self.cross_attn = Attention(num_heads, key_dim, dropout, name="cross_attention")
        self.norm3 = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="norm3")
        self.ffn_in = tf.keras.layers.Dense(ffn_dim, activation=activation, name="ffn_in")
        self.ffn_out = None
        self.drop = tf.keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.ffn_out = tf.keras.layers.Dense(input_shape[-1], name="ffn_out")
        super().build(input_shape)

    def _ffn(self, x, training=None):
        h = self.ffn_out(self.ffn_in(self.norm3(x)))
        return x + self.drop(h, training=training)

    def call(self, x, self_bias, scene, scene_bias, training=None):
        """Teacher-forced pass.

        Args:
          x: [B, T*A, D] decoder inputs.
          self_bias: [B, 1, T*A, T*A] float32 block-causal + agent-padding bias, or the same
            cut into query chunks (`masks.block_causal_chunk_biases`, faster: masked key
            blocks are skipped).
          scene: [B, N, D] scene embedding; scene_bias: [B, 1, 1, N] scene padding bias.
        Returns: [B, T*A, D].
        """
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, self_bias, training=training), training=training)
        h = self.cross_attn(self.norm2(x), scene, scene_bias, training=training)
        x = x + self.drop(h, training=training)
        return self._ffn(x, training=training)

    def scene_kv(self, scene: tf.Tensor, scene_mask: tf.Tensor) -> tf.Tensor:
        """[B, N, D] scene embedding, [B, N] bool mask -> [B, 2, H, N, d + 1] folded
        cross-attention keys/values (computed once per scene)."""
        k, v = self.cross_attn.project_kv(scene)
        bias = masks.mask_to_bias(tf.cast(scene_mask, tf.bool))
        return tf.stack([fold_keys(k, bias), fold_values(v)], axis=1)

    def empty_cache(self, batch, num_steps: int, num_agents: int, dtype) -> tf.Tensor:
        """[batch, 2, H, T, A, d + 1] self-attention cache with nothing written: every key
        is masked (bias column MASK_VALUE) until its step writes it."""
        shape = tf.stack([batch, 1, self.num_heads, num_steps, num_agents, self.key_dim])
        zeros = tf.zeros(shape, dtype)
        key_bias = tf.fill(tf.concat([shape[:-1], [1]], 0), tf.constant(masks.MASK_VALUE, dtype))
        keys = tf.concat([zeros, key_bias], axis=-1)
        values = tf.concat([zeros, tf.ones_like(key_bias)], axis=-1)
        return tf.concat([keys, values], axis=1)

    def step(self, x, step, self_cache, key_bias, scene_kv):
        """One decoding step for all agents of all rollouts.

        Args:
          x: [B*R, A, D] inputs of step `step` (R rollouts per scene, rows b * R + r).
          step: scalar int32 index t.
          self_cache: [B*R, 2, H, T, A, d + 1] this block's cache (`empty_cache`); slot t is
            overwritten.
          key_bias: [B*R, A] float32 bias of this step's keys (`masks.mask_to_bias` of the
            agent mask: padded agents are never attended to).
          scene_kv: [B, 2, H, N, d + 1] from `scene_kv`.
        Returns: ([B*R, A, D], updated self_cache).
        """
        batch_r, num_agents = tf.shape(x)[0], x.shape[1]
        num_steps = self_cache.shape[3]
        h = self.norm1(x)
        q, k, v = self.self_attn.project_qkv(h)  # q [B*R, A, H, d], k/v [B*R, H, A, d]
        new_kv = tf.stack([fold_keys(k, key_bias), fold_values(v)], axis=1)
        self_cache = _write_step(self_cache, tf.cast(new_kv, self_cache.dtype), step)
        # Steps after `step` are masked anyway, so attend only to a prefix of the cache. The
        # prefix length must be static for XLA: the steps are cut into `num_buckets` equal
        # buckets and a switch picks the shortest prefix that covers `step` (T branches would
        # be exact but compile slowly at 10 Hz; 8 buckets do ~(1 + 1/8) / 2 of the full work,
        # and 16 measured no faster at 2 Hz).
        num_buckets = min(num_steps, _MAX_PREFIX_BUCKETS)
        bucket_steps = -(-num_steps // num_buckets)
        width = self.key_dim + 1

        def attend_prefix(bucket):
            n = min((bucket + 1) * bucket_steps, num_steps) * num_agents
            # [B*R, H, t', A, d+1] -> [B*R, H, t'*A, d+1]: key p = t * A + a, as in the full pass.
            kv = tf.reshape(
                self_cache[:, :, :, : n // num_agents], [batch_r, 2, self.num_heads, n, width]
            )
            return self.self_attn.attend_folded(q, kv[:, 0], kv[:, 1])

        branches = [functools.partial(attend_prefix, b) for b in range(num_buckets)]
        heads = tf.switch_case(tf.cast(step, tf.int32) // bucket_steps, branches)
        x = x + self.self_attn.project_output(heads)

        # Cross-attention: all R rollouts of a scene share its keys, so fold R into the query
        # axis ([B, R*A]) instead of tiling the scene keys R times.
        batch = tf.shape(scene_kv)[0]
        q = self.cross_attn.project_query(self.norm2(x))  # [B*R, A, H, d]
        q = tf.reshape(q, [batch, -1, self.num_heads, self.key_dim])
        heads = self.cross_attn.attend_folded(q, scene_kv[:, 0], scene_kv[:, 1])
        h = self.cross_attn.project_output(heads)
        x = x + tf.reshape(h, tf.shape(x))
        return self._ffn(x), self_cache

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


def _write_step(cache: tf.Tensor, update: tf.Tensor, step) -> tf.Tensor:
    """Writes update [B', 2, H, A, w] into cache [B', 2, H, T, A, w] at time slot `step`.

    A `tensor_scatter_nd_update` of B'*2*H contiguous [A, w] slabs: it runs eagerly as well as
    under XLA, where it becomes an in-place scatter inside the decoding while loop.
    """
    batch_r, heads = tf.shape(cache)[0], cache.shape[2]
    grid = tf.meshgrid(tf.range(batch_r), tf.range(2), tf.range(heads), indexing="ij")
    t = tf.fill(tf.shape(grid[0]), tf.cast(step, tf.int32))
    indices = tf.stack(grid + [t], axis=-1)  # [B', 2, H, 4] = (b, kv, h, t)
    return tf.tensor_scatter_nd_update(cache, indices, update)
