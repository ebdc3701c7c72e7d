"""tf.data input pipeline over preprocessed scene shards (see `motion_sim.data.preprocess`).

Order of stages, and why:
  list files (shuffled) -> shard files per input pipeline (each host reads disjoint files; falls
  back to sharding records when there are fewer files than pipelines) -> interleave shard readers
  -> [skip history-only scenes: no logged future] -> parse -> [cache] -> [shuffle] -> [repeat] -> batch(drop_remainder: static batch shape for
  XLA/TPU) -> prefetch.
Caching after parsing means later epochs skip decompression and TensorProto parsing.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
from google.protobuf.message import DecodeError

from motion_sim.data.datatypes import scene_spec
from motion_sim.data.scene_codec import parse_history_only, parse_scene
from motion_sim.data.tfrecord_io import clean_tf_message

_SHUFFLE_BUFFER = 1024


def _compression(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


class DataError(ValueError):
    """The training data cannot be used (empty, unreadable, not scene shards); names the file."""


def _check_scene_record(path: str, record: bytes) -> None:
    """Raises DataError unless `record` is a serialized scene (what preprocess writes)."""
    try:
        features = tf.train.Example.FromString(record).features.feature
    except DecodeError:
        features = {}
    missing = [name for name in scene_spec() if name not in features]
    if missing:
        raise DataError(
            f"{path}: record 0 is not a scene shard record (lacks "
            f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); raw "
            "WOMD Scenario / tf.Example / GPUDrive files must first go through "
            "`python -m motion_sim.data.preprocess`"
        )


def _check_data(files: list[str], file_pattern: str) -> None:
    """Up-front check of the training data: not empty, readable, and scene shards (the first
    record of the first non-empty file), so a wrong path fails in seconds with a line naming the
    file instead of a graph traceback after the model is built."""
    for path in files:
        try:
            for record in tf.data.TFRecordDataset(path, compression_type=_compression(path)).take(
                1
            ):
                _check_scene_record(path, record.numpy())
                return
        except tf.errors.OpError as e:
            raise DataError(f"{path}: not a readable scene shard ({clean_tf_message(e)})") from None
    raise DataError(f"dataset {file_pattern!r} is empty: {len(files)} files, no records")


def _check_has_future(files: list[str], file_pattern: str) -> None:
    """Raises unless some scene has a logged future; stops at the first one (cheap when the
    data is not all test split)."""
    example = None
    for path in files:
        for record in tf.data.TFRecordDataset(path, compression_type=_compression(path)):
            if not parse_history_only(record):
                return
            if example is None:
                example = (path, parse_scene(record)["scenario_id"].numpy().decode())
    raise DataError(
        f"dataset {file_pattern!r} has no scene with a logged future: every scene "
        f"is history-only (test split), e.g. scene {example[1]!r} in {example[0]}; "
        f"training and scoring need the logged future"
    )


def history_only_count(file_pattern: str) -> tuple[int, int] | None:
    """(history-only scenes, all scenes) from the `stats.json` that `preprocess` writes beside
    the shards, summed over the pattern's directories; None if a directory has none (counting
    by reading every shard would cost a full pass over the data)."""
    directories = set()
    for part in file_pattern.split(","):
        for path in tf.io.gfile.glob(part.strip()) if part.strip() else []:
            directories.add(os.path.dirname(path))
    history_only = total = 0
    for directory in sorted(directories):
        path = os.path.join(directory, "stats.json")
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            stats = json.load(f)
        history_only += int(stats.get("history_only", 0))
        total += int(stats.get("scenarios_written", 0))
    return history_only, total


def make_dataset(
    file_pattern: str,
    batch_size: int,
    *,
    shuffle: bool = True,
    repeat: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    cache: bool = False,
    require_future: bool = True,
) -> tf.data.Dataset:
    """Batched dicts of `Scene` fields (leading batch axis; scenario_id stays tf.string).

    Args:
      file_pattern: glob(s) of scene shards, comma-separated; `.gz` files are read as GZIP.
      batch_size: global batch size; with `input_context`, each replica gets
        `input_context.get_per_replica_batch_size(batch_size)`.
      shuffle, repeat: training defaults; set both False for a deterministic single pass.
      input_context: from `strategy.distribute_datasets_from_function`.
      seed: shuffle seed (file order and element order). A seeded (or unshuffled) pipeline
        delivers the same order on every run -- reproducible experiments, exact restarts -- at
        the cost of parallel reads waiting for the slowest file; `seed=None` lets them deliver
        in completion order.
      cache: cache parsed scenes in memory after the first epoch.
      require_future: skip history-only (test-split) scenes, which have no logged future to
        learn from or score against; a data set with none other is a ValueError naming a
        scene. `history_only_count` says how many are skipped. False keeps them.
    """
    files = []
    for part in file_pattern.split(","):
        if part.strip():
            files.extend(tf.io.gfile.glob(part.strip()))
    files = sorted(set(f for f in files if not f.endswith(".json") and ".tmp-" not in f))
    if not files:
        raise FileNotFoundError(f"no scene shards match {file_pattern!r}")
    _check_data(files, file_pattern)
    if require_future:
        _check_has_future(files, file_pattern)
    compression = _compression(files[0])
    if any(_compression(f) != compression for f in files):
        raise DataError(f"{file_pattern!r} mixes GZIP and uncompressed shards")

    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    deterministic = not shuffle or seed is not None
    ds = tf.data.Dataset.from_tensor_slices(files)
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        else:
            shard_records = True  # too few files: every pipeline reads all, keeps its 1/N
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=min(len(files), 8),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if shard_records:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if require_future:
        ds = ds.filter(lambda record: tf.logical_not(parse_history_only(record)))
    ds = ds.map(parse_scene, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
