"""Bulk protobuf decoding with `tf.io.decode_proto`, shared by the Scenario reader
(`data/scenario_decoder.py`) and the rollout reader (`metrics/rollout_decode.py`).

Reading repeated fields message by message through protobuf's Python API costs microseconds
per field; decode_proto decodes a whole batch of messages in C++.
"""

from __future__ import annotations

import functools
import types

import tensorflow as tf
from google.protobuf import descriptor_pb2

_PACKAGE = "waymo.open_dataset"


@functools.lru_cache(maxsize=None)
def descriptor_source(proto_module: types.ModuleType) -> bytes:
    """`bytes://` + the serialized FileDescriptorSet of a `*_pb2` module and its dependencies."""
    files = descriptor_pb2.FileDescriptorSet()
    seen = set()

    def add(file_descriptor):
        if file_descriptor.name in seen:
            return
        seen.add(file_descriptor.name)
        for dependency in file_descriptor.dependencies:
            add(dependency)
        file_descriptor.CopyToProto(files.file.add())

    add(proto_module.DESCRIPTOR)
    return b"bytes://" + files.SerializeToString()


def decode(messages, message_type: str, fields, dtypes, proto_module: types.ModuleType):
    """decode_proto of `waymo.open_dataset.<message_type>` over axis-0 `messages`.

    Also when there are none: the op rejects an empty batch, so one empty message is appended
    and its row dropped. Returns decode_proto's (sizes, values) namedtuple.
    """
    messages = tf.concat([messages, tf.fill(tf.concat([[1], tf.shape(messages)[1:]], 0), "")], 0)
    decoded = tf.io.decode_proto(
        messages,
        f"{_PACKAGE}.{message_type}",
        list(fields),
        list(dtypes),
        descriptor_source=descriptor_source(proto_module),
    )
    return decoded._replace(sizes=decoded.sizes[:-1], values=[v[:-1] for v in decoded.values])
