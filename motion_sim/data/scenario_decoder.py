"""Bulk decoding of a serialized Scenario's track states and map points with `tf.io.decode_proto`.

Why: reading 23,000 `ObjectState` messages field by field through the Python protobuf API costs
~50 ms per WOMD scenario, most of the preprocessing budget; decode_proto does the same in C++ in
~1 ms. Everything else (ids, types, metadata, traffic lights) is cheap and still read from the
parsed message by `scenario_reader`. Unset fields decode to the proto defaults (0 / False).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from waymo_open_dataset.protos import scenario_pb2

from motion_sim.data import proto_decode

STATE_FIELDS = (
    "center_x",
    "center_y",
    "center_z",
    "velocity_x",
    "velocity_y",
    "heading",
    "length",
    "width",
    "height",
)
# MapFeature oneof kind -> (message type, repeated MapPoint field).
MAP_KINDS = {
    "lane": ("LaneCenter", "polyline"),
    "road_line": ("RoadLine", "polyline"),
    "road_edge": ("RoadEdge", "polyline"),
    "crosswalk": ("Crosswalk", "polygon"),
    "speed_bump": ("SpeedBump", "polygon"),
    "driveway": ("Driveway", "polygon"),
}


def _decode(messages, message_type, fields, dtypes):
    return proto_decode.decode(messages, message_type, fields, dtypes, scenario_pb2)


def _first(values: tf.Tensor) -> tf.Tensor:
    """values[..., 0] of a decoded optional field, defaulting to 0 when no message set it (the
    decoded last axis then has size 0)."""
    paddings = [[0, 0]] * (values.shape.rank - 1) + [[0, 1]]
    return tf.pad(values, paddings)[..., 0]


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _decode_scenario(serialized):
    top = _decode(serialized[None], "Scenario", ["tracks", "map_features"], [tf.string, tf.string])
    tracks, features = top.values[0][0], top.values[1][0]
    track = _decode(tracks, "Track", ["states"], [tf.string])
    states = _decode(
        track.values[0],
        "ObjectState",
        STATE_FIELDS + ("valid",),
        [tf.float64] * len(STATE_FIELDS) + [tf.bool],
    )
    state_values = tf.stack([tf.cast(_first(v), tf.float64) for v in states.values[:-1]], -1)
    outputs = {
        "num_states": track.sizes[:, 0],
        "states": state_values,
        "valid": _first(states.values[-1]),
    }
    kinds = _decode(features, "MapFeature", list(MAP_KINDS), [tf.string] * len(MAP_KINDS))
    for k, (kind, (message_type, point_field)) in enumerate(MAP_KINDS.items()):
        rows = tf.where(kinds.sizes[:, k] > 0)[:, 0]
        sub = tf.gather(_first(kinds.values[k]), rows)
        points = _decode(sub, message_type, [point_field], [tf.string])
        counts = points.sizes[:, 0]
        # Flatten before decoding the points: padding to the longest polyline would decode
        # ~5x more (empty) MapPoint messages.
        flat = tf.boolean_mask(
            points.values[0], tf.sequence_mask(counts, tf.shape(points.values[0])[1])
        )
        xyz = _decode(flat, "MapPoint", ["x", "y", "z"], [tf.float64] * 3)
        outputs[kind] = (rows, tf.stack([_first(v) for v in xyz.values], -1), counts)
    return outputs


def decode_scenario_arrays(serialized: bytes) -> dict:
    """Numpy arrays of one serialized Scenario.

    Returns:
      num_states: [N] int32 states per track.
      states: [N, S_max, 9] float64 in STATE_FIELDS order; valid: [N, S_max] bool.
      <map kind>: (feature rows [n] int64, points [sum(counts), 3] float64, counts [n] int32)
        for each MAP_KINDS key: the points of feature rows[j], concatenated in order.
    """
    return tf.nest.map_structure(lambda t: t.numpy(), _decode_scenario(tf.constant(serialized)))


def polylines_by_feature(arrays: dict, kinds=tuple(MAP_KINDS)) -> dict:
    """{feature row: [P, 3] points} over the polyline/polygon kinds `kinds` (default: every
    MAP_KINDS key) in `arrays`; each kind's rows in feature order."""
    out = {}
    for kind in kinds:
        rows, points, counts = arrays[kind]
        for row, pts in zip(rows, np.split(points, np.cumsum(counts)[:-1])):
            out[int(row)] = pts
    return out
