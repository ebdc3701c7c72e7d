"""Attention masks as additive biases.

Masked scores get a large *finite* negative number instead of -inf: a row whose keys are all
masked (a padded query, or a scene with no agents) then gives a uniform softmax, not NaN, and the
padded outputs are simply ignored downstream. Biases are float32 because the softmax always runs
in float32 (see `attention.Attention`), also under `mixed_bfloat16`.
"""

from __future__ import annotations

import tensorflow as tf

# exp(-1e9 - max) underflows to exactly 0 in float32, so masked keys contribute nothing and the
# cached and teacher-forced passes agree to rounding.
MASK_VALUE = -1e9


def mask_to_bias(mask: tf.Tensor) -> tf.Tensor:
    """bool mask (True = attend) -> float32 additive bias (0 or MASK_VALUE), same shape."""
    return tf.where(mask, tf.constant(0.0, tf.float32), tf.constant(MASK_VALUE, tf.float32))


def key_padding_bias(key_mask: tf.Tensor) -> tf.Tensor:
    """[B, K] bool key mask -> [B, 1, 1, K] bias broadcast over heads and queries."""
    return mask_to_bias(key_mask)[:, None, None, :]


def block_causal_mask(num_steps: int, num_agents: int) -> tf.Tensor:
    """[T*A, T*A] bool; sequence position p = t * A + a.

    Query (t, a) may attend to key (t', a') iff t' <= t: the agents of one step see each other
    (joint, simultaneous actions within a step) and every earlier step, never a later one.
    """
    steps = tf.repeat(tf.range(num_steps), num_agents)
    return steps[None, :] <= steps[:, None]


def block_causal_bias(agent_mask: tf.Tensor, num_steps: int) -> tf.Tensor:
    """Teacher-forced self-attention bias [B, 1, T*A, T*A].

    Args:
      agent_mask: [B, A] bool; padded agents are masked as keys at every step (their query rows
        still compute something, which callers mask out).
      num_steps: T.
    """
    num_agents = agent_mask.shape[-1] or tf.shape(agent_mask)[-1]
    causal = block_causal_mask(num_steps, num_agents)  # [Q, K]
    key_valid = tf.tile(agent_mask, [1, num_steps])  # [B, T*A], same p = t*A + a order
    return mask_to_bias(causal[None, None, :, :] & key_valid[:, None, None, :])


def block_causal_chunk_biases(agent_mask: tf.Tensor, num_steps: int, num_chunks: int) -> tuple:
    """`block_causal_bias` cut into query chunks of whole steps, each over its visible keys.

    Chunk i holds the queries of steps [s_i, e_i) and needs only the keys of steps [0, e_i)
    (later steps are masked for all of them): bias i is rows [s_i*A, e_i*A) x columns
    [0, e_i*A) of `block_causal_bias`, shape [B, 1, (e_i - s_i)*A, e_i*A] (see
    `Attention.attend_chunked`). Steps are split as evenly as possible into
    min(num_chunks, num_steps) chunks; num_chunks=1 gives the full bias.

    Work is ~(C + 1) / (2C) of the full [T*A, T*A] attention for C chunks.
    """
    num_agents = agent_mask.shape[-1]
    if num_agents is None:
        raise ValueError("block_causal_chunk_biases needs a static number of agents")
    num_chunks = max(1, min(int(num_chunks), num_steps))
    bounds = [round(i * num_steps / num_chunks) for i in range(num_chunks + 1)]
    biases = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        q_steps = tf.repeat(tf.range(start, end), num_agents)
        k_steps = tf.repeat(tf.range(end), num_agents)
        causal = k_steps[None, :] <= q_steps[:, None]  # [Q_i, K_i]
        key_valid = tf.tile(agent_mask, [1, end])  # [B, K_i], p = t*A + a
        biases.append(mask_to_bias(causal[None, None] & key_valid[:, None, None, :]))
    return tuple(biases)
