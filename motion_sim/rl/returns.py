"""Reward-to-go and its normalisation (paper Eq. 3-5).

The discounted sum uses tf-agents' `value_ops.discounted_return` (time-major scan); the
normalisation statistics are reduced over the *global* batch: each replica all-reduces its
sum, sum of squares and count through the replica context, so every replica subtracts the same
mean and divides by the same std, and the update equals the single-device one.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import NamedTuple

import tensorflow as tf

# tf_agents imports gym 0.26, which on import prints a three-line "unmaintained" banner to stderr
# and turns on every DeprecationWarning process-wide (`simplefilter("once")`: Keras's harmless
# randrange warning then appears in every run). This is the project's only tf_agents import:
# the banner is swallowed and the warning filters are restored here.
with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
    from tf_agents.utils import value_ops

_EPS = 1e-6


class ReturnStats(NamedTuple):
    """Scalars over the global batch of valid agent-steps, before normalisation."""

    mean: tf.Tensor
    std: tf.Tensor
    count: tf.Tensor


def reward_to_go(rewards: tf.Tensor, gamma: float) -> tf.Tensor:
    """G_t = sum_{k>=t} gamma^(k-t) r_k along the last axis: [..., T] -> [..., T].

    Invalid steps must already hold zero reward (padding agents contribute nothing).
    """
    shape = tf.shape(rewards)
    num_t = rewards.shape[-1]
    flat = tf.reshape(rewards, [-1, num_t])  # [N, T]
    time_major = tf.transpose(flat)  # [T, N]
    discounts = tf.fill(tf.shape(time_major), tf.cast(gamma, rewards.dtype))
    g = value_ops.discounted_return(
        time_major, discounts, time_major=True, provide_all_returns=True
    )
    return tf.reshape(tf.transpose(g), shape)


def all_reduce_sum(values):
    """Sums a list of tensors over replicas when called inside a replica context."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return values
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)


def global_stats(values: tf.Tensor, valid: tf.Tensor) -> ReturnStats:
    """Mean/std of `values` over valid entries of the global batch (all replicas)."""
    mask = tf.cast(valid, values.dtype)
    s, ss, n = all_reduce_sum(
        [tf.reduce_sum(values * mask), tf.reduce_sum(tf.square(values) * mask), tf.reduce_sum(mask)]
    )
    n_safe = tf.maximum(n, 1.0)
    mean = s / n_safe
    var = tf.maximum(ss / n_safe - tf.square(mean), 0.0)
    return ReturnStats(mean=mean, std=tf.sqrt(var), count=n)


def normalize_global(returns: tf.Tensor, valid: tf.Tensor):
    """(G - mean) / (std + eps) with global-batch statistics; invalid entries -> 0."""
    stats = global_stats(returns, valid)
    out = (returns - stats.mean) / (stats.std + _EPS)
    return tf.where(valid, out, tf.zeros_like(out)), stats


def normalize_group(returns: tf.Tensor, valid: tf.Tensor, rollout_axis: int = 1):
    """Group-relative: (G - mean_R) / (std_R + eps) across the rollouts of the same scenario,
    separately per agent and token step (the GRPO baseline: same start state, same step).

    Args:
      returns, valid: [B, R, A, T] (rollout axis 1 by default).
    Statistics are per scenario and never cross replicas (each scenario's rollouts live on one
    replica), so the result is distribution-invariant without a reduction.
    """
    mask = tf.cast(valid, returns.dtype)
    n = tf.reduce_sum(mask, axis=rollout_axis, keepdims=True)
    mean = tf.reduce_sum(returns * mask, axis=rollout_axis, keepdims=True) / tf.maximum(n, 1.0)
    var = tf.reduce_sum(tf.square(returns - mean) * mask, axis=rollout_axis, keepdims=True)
    std = tf.sqrt(var / tf.maximum(n, 1.0))
    out = (returns - mean) / (std + _EPS)
    # A scenario with a single valid rollout at that step has no baseline: no signal.
    out = tf.where(valid & (n > 1.0), out, tf.zeros_like(out))
    return out
