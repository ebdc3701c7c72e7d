"""What every loss returns to the learner."""

from __future__ import annotations

from typing import Dict, NamedTuple

import tensorflow as tf

from motion_sim.data import datatypes


class LossOutput(NamedTuple):
    """Attributes:
    loss: [] float32, this replica's share of the global-batch loss (local sum divided by the
      global count), so summing the replicas' gradients gives the global-mean gradient.
    metrics: name -> [] float32, each also a replica *share*: summing over replicas
      (`strategy.reduce(SUM)`) yields the global value (sums are divided by global counts,
      already-global scalars by the number of replicas).
    """

    loss: tf.Tensor
    metrics: Dict[str, tf.Tensor]


def replica_share(value: tf.Tensor) -> tf.Tensor:
    """An already-global scalar as a per-replica share (see `LossOutput.metrics`)."""
    ctx = tf.distribute.get_replica_context()
    n = 1 if ctx is None else ctx.num_replicas_in_sync
    return value / float(n)


def scene_get(scene, key):
    """Field of a batched scene given as a dict (tf.data) or a `Scene` NamedTuple."""
    return datatypes.scene_fields(scene)[key]
