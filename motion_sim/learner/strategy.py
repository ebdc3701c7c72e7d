"""One factory for the `tf.distribute` strategy of a run (after tf-agents `strategy_utils`)."""

from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import logging


def get_strategy(
    tpu: str | None = None,
    use_gpu: bool = True,
    multi_worker: bool | None = None,
    devices: list | None = None,
) -> tf.distribute.Strategy:
    """Picks the strategy.

    Args:
      tpu: TPU name/address (`--tpu`, "local" on a TPU VM): TPUStrategy.
      use_gpu: use every visible GPU with MirroredStrategy (when there are any).
      multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG. None = decide from
        whether TF_CONFIG names more than one task.
      devices: explicit device list for MirroredStrategy (tests use 2 virtual CPUs).
    Returns:
      TPUStrategy, MultiWorkerMirroredStrategy, MirroredStrategy, or the default strategy (CPU,
      or a single GPU, where mirroring only adds overhead).
    """
    if tpu:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        logging.info("TPUStrategy on %s (%d cores)", tpu, resolver.num_accelerators().get("TPU", 0))
        return tf.distribute.TPUStrategy(resolver)
    if multi_worker is None:
        multi_worker = _tf_config_num_tasks() > 1
    if multi_worker:
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "multi_worker=True needs TF_CONFIG describing the cluster "
                "(see launch/multi_worker.sh)"
            )
        logging.info("MultiWorkerMirroredStrategy from TF_CONFIG")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU") if use_gpu else []
    if len(gpus) > 1:
        logging.info("MirroredStrategy over %d GPUs", len(gpus))
        return tf.distribute.MirroredStrategy([g.name for g in gpus])
    return tf.distribute.get_strategy()


def _tf_config_num_tasks() -> int:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
    return sum(len(v) for v in cluster.values())


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes summaries, the operative config and exported models."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver is not None:
        return resolver.task_type in (None, "chief") or (
            resolver.task_type == "worker"
            and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict()
        )
    return True
