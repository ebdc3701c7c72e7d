"""TFRecord file listing and record iteration, local or `gs://`, with errors that name the file.

Corruption policy (shared by every reader and the preprocess CLI): a record whose TFRecord framing
or CRC is broken (truncated file, garbage bytes) makes the rest of that file unreadable, so it
raises `ScenarioError(reason="corrupt_tfrecord")` naming `file:record`; records before it have
already been yielded. A record that is framed correctly but does not parse as the expected proto
is the reader's business (`reason="bad_record"`) and only that record is skipped.
"""

from __future__ import annotations

import glob as glob_module
import re
from typing import Iterator

import tensorflow as tf

from motion_sim.data.datatypes import ScenarioError


def _glob(pattern: str) -> list[str]:
    """tf.io.gfile.glob, with a clear error for file names TensorFlow cannot represent."""
    try:
        return tf.io.gfile.glob(pattern)
    except (UnicodeDecodeError, UnicodeEncodeError):
        # TF file names are UTF-8; name the offending file (Python's glob can list it).
        bad = [p for p in glob_module.glob(pattern) if not _is_utf8(p)] or [pattern]
        raise ValueError(
            f"{bad[0]!r}: file name is not valid UTF-8, which TensorFlow cannot "
            "open; rename it or narrow the glob"
        ) from None


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def expand_pattern(pattern: str) -> list[str]:
    """Sorted files matching a glob (comma-separated globs allowed); raises if none match."""
    files = []
    for part in pattern.split(","):
        part = part.strip()
        if part:
            files.extend(_glob(part))
    files = sorted(set(files))
    if not files:
        raise FileNotFoundError(f"no files match {pattern!r}")
    return files


# TF wraps eager op errors as "{{function_node __wrapped__IteratorGetNext_...}} what
# [Op:IteratorGetNext]": internal names that say nothing to the user.
_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[A-Za-z0-9_]+\]")


def clean_tf_message(error: Exception) -> str:
    """The first line of a TF error's message without TF-internal function names."""
    message = getattr(error, "message", None) or str(error)
    lines = message.strip().splitlines() or [""]
    return _TF_NOISE.sub("", lines[0]).strip()


def iter_records(path: str) -> Iterator[tuple[int, bytes]]:
    """Yields (record index, serialized bytes) of one TFRecord file (uncompressed).

    Raises:
      FileNotFoundError: `path` does not exist.
      ScenarioError: `path` is a directory ("not_a_file"), cannot be read ("unreadable"), or is
        corrupt from some record on ("corrupt_tfrecord"); the message names file:record.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if tf.io.gfile.isdir(path):
        raise ScenarioError(
            path, "is a directory, not a TFRecord file (narrow the glob)", reason="not_a_file"
        )
    index = 0
    try:
        iterator = iter(tf.data.TFRecordDataset(path))
    except tf.errors.OpError as e:
        raise ScenarioError(
            path, f"cannot read: {clean_tf_message(e)}", reason="unreadable"
        ) from None
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except tf.errors.DataLossError as e:
            raise ScenarioError(
                f"{path}:{index}",
                f"corrupt or truncated TFRecord (framing/CRC check failed; records from {index} "
                f"on are unreadable): {clean_tf_message(e)}",
                reason="corrupt_tfrecord",
            ) from None
        except tf.errors.OpError as e:  # permission denied, I/O error, ...
            raise ScenarioError(
                f"{path}:{index}", f"cannot read: {clean_tf_message(e)}", reason="unreadable"
            ) from None
        yield index, record.numpy()
        index += 1
