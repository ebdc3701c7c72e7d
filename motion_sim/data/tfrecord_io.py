"""TFRecord file listing and record iteration, local or `gs://`, with errors that name the file.

Corruption policy (shared by every reader and the preprocess CLI): a record whose TFRecord framing
or CRC is broken (truncated file, garbage bytes) makes the rest of that file unreadable, so it
raises `ScenarioError(reason="corrupt_tfrecord")` naming `file:record`; records before it have
already been yielded. A record that is framed correctly but does not parse as the expected proto
is the reader's business (`reason="bad_record"`) and only that record is skipped.
"""
from __future__ import annotations

from typing import Iterator

import tensorflow as tf

from motion_sim.data.datatypes import ScenarioError


def expand_pattern(pattern: str) -> list[str]:
    """Sorted files matching a glob (comma-separated globs allowed); raises if none match."""
    files = []
    for part in pattern.split(","):
        part = part.strip()
        if part:
            files.extend(tf.io.gfile.glob(part))
    files = sorted(set(files))
    if not files:
        raise FileNotFoundError(f"no files match {pattern!r}")
    return files


def iter_records(path: str) -> Iterator[tuple[int, bytes]]:
    """Yields (record index, serialized bytes) of one TFRecord file (uncompressed)."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    index = 0
    iterator = iter(tf.data.TFRecordDataset(path))
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except tf.errors.DataLossError as e:
            raise ScenarioError(
                f"{path}:{index}",
                f"corrupt or truncated TFRecord (framing/CRC check failed; records from {index} "
                f"on are unreadable): {e.message.splitlines()[0]}",
                reason="corrupt_tfrecord") from None
        yield index, record.numpy()
        index += 1
