"""WOMD tf.Example "motion" format (`state/*`, `roadgraph_samples/*`, `traffic_light_state/*`)
-> `RawScenario`.

The format is fixed-size: 128 track slots (`state/*/valid` marks the real ones), 20,000 roadgraph
sample points grouped into polylines by `roadgraph_samples/id`, and 16 traffic-light slots per step.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from motion_sim.data import map_types
from motion_sim.data.datatypes import (
    CURRENT_INDEX,
    NUM_FUTURE_STEPS,
    NUM_HISTORY_STEPS,
    RawScenario,
    ScenarioError,
)
from motion_sim.data.tfrecord_io import expand_pattern, iter_records

_PHASES = (("past", NUM_HISTORY_STEPS - 1), ("current", 1), ("future", NUM_FUTURE_STEPS))


class _Features:
    """Typed access to one Example's features with errors that name the source."""

    def __init__(self, example: tf.train.Example, source: str):
        self._features = example.features.feature
        self._source = source
        # Test-split examples may carry no future features at all: they read as zeros
        # (invalid), like the -1 / valid=0 padding of those that do.
        self.has_future = "state/future/valid" in self._features

    def _phase(self, prefix: str, phase: str, name: str, dtype, shape) -> np.ndarray:
        if phase == "future" and not self.has_future:
            return np.zeros(shape, dtype)
        return self.get(f"{prefix}/{phase}/{name}", dtype, shape)

    def get(self, key: str, dtype, shape) -> np.ndarray:
        if key not in self._features:
            raise ScenarioError(
                self._source, f"tf.Example lacks feature {key!r}", reason="bad_record"
            )
        feature = self._features[key]
        kind = feature.WhichOneof("kind")
        values = np.asarray(getattr(feature, kind).value if kind else [], dtype)
        if -1 not in shape and values.size != int(np.prod(shape)):
            raise ScenarioError(
                self._source,
                f"feature {key!r} has {values.size} values, expected shape {shape}",
                reason="bad_record",
            )
        return values.reshape(shape)

    def states(self, name: str, num_tracks: int, dtype=np.float64) -> np.ndarray:
        """[num_tracks, 91] concatenation of state/past|current|future/<name>."""
        return np.concatenate(
            [
                self._phase("state", phase, name, dtype, (num_tracks, steps))
                for phase, steps in _PHASES
            ],
            axis=1,
        )

    def lights(self, name: str, num_lights: int, dtype) -> np.ndarray:
        """[91, num_lights] concatenation of traffic_light_state/past|current|future/<name>."""
        return np.concatenate(
            [
                self._phase("traffic_light_state", phase, name, dtype, (steps, num_lights))
                for phase, steps in _PHASES
            ],
            axis=0,
        )


def _roadgraph(features: _Features, source: str) -> list:
    ids = features.get("roadgraph_samples/id", np.int64, (-1,))
    n = len(ids)
    xyz = features.get("roadgraph_samples/xyz", np.float64, (n, 3))
    types = features.get("roadgraph_samples/type", np.int64, (n,))
    valid = features.get("roadgraph_samples/valid", np.int64, (n,)).astype(bool)
    ids, xyz, types = ids[valid], xyz[valid], types[valid]
    polylines = []
    # Samples of one feature are contiguous and in order; a stable split on id changes keeps
    # that order (sorting by id would too, but would also merge repeated ids of distinct runs).
    starts = np.flatnonzero(np.r_[True, (ids[1:] != ids[:-1]) | (types[1:] != types[:-1])])
    for start, end in zip(starts, np.r_[starts[1:], len(ids)]):
        map_type = map_types.from_womd_code(types[start])
        if map_type is None:
            continue
        points = xyz[start:end]
        if map_type in map_types.POLYGON_TYPES and len(points) > 1:
            points = np.concatenate([points, points[:1]])
        polylines.append((map_type, points))
    return polylines


def read_motion_example(example: tf.train.Example, source: str) -> RawScenario:
    """Converts one WOMD motion tf.Example. A test-split example (no `state/future/*`, or no
    track valid after the current step) reads as `history_only`."""
    features = _Features(example, source)
    track_id = features.get("state/id", np.float64, (-1,))
    n = len(track_id)
    valid = features.states("valid", n, np.int64).astype(bool)
    # Unused slots have every step invalid and id -1; keep only real tracks.
    keep = valid.any(axis=1)
    is_sdc = features.get("state/is_sdc", np.int64, (n,)).astype(bool)
    if is_sdc.sum() != 1:
        raise ScenarioError(
            source, f"expected exactly one state/is_sdc, found {is_sdc.sum()}", reason="sdc_invalid"
        )
    keep |= is_sdc
    rows = np.flatnonzero(keep)
    new_row = np.cumsum(keep) - 1
    xyz = np.stack([features.states(c, n) for c in ("x", "y", "z")], axis=-1)
    velocity = np.stack([features.states(c, n) for c in ("velocity_x", "velocity_y")], axis=-1)
    size = np.stack([features.states(c, n) for c in ("length", "width", "height")], axis=-1)
    heading = features.states("bbox_yaw", n)
    to_predict = features.get("state/tracks_to_predict", np.int64, (n,)).astype(bool) & keep

    num_lights = len(features.get("traffic_light_state/current/id", np.int64, (-1,)))
    tl_valid = features.lights("valid", num_lights, np.int64).astype(bool)
    tl_xyz = np.stack([features.lights(c, num_lights, np.float64) for c in "xyz"], axis=-1)
    scenario_id = features.get("scenario/id", object, (1,))[0]
    if isinstance(scenario_id, bytes):
        scenario_id = scenario_id.decode()
    return RawScenario(
        scenario_id=scenario_id,
        source=source,
        track_id=track_id[rows].astype(np.int64),
        track_type=features.get("state/type", np.float64, (n,))[rows].astype(np.int32),
        xyz=xyz[rows],
        velocity=velocity[rows],
        heading=heading[rows],
        size=size[rows],
        valid=valid[rows],
        sdc_index=int(new_row[np.flatnonzero(is_sdc)[0]]),
        tracks_to_predict=new_row[np.flatnonzero(to_predict)].astype(np.int32),
        map_polylines=_roadgraph(features, source),
        tl_lane_id=np.where(tl_valid, features.lights("id", num_lights, np.int64), -1),
        tl_state=features.lights("state", num_lights, np.int64).astype(np.int32),
        tl_xyz=tl_xyz,
        tl_valid=tl_valid,
        history_only=not valid[rows, CURRENT_INDEX + 1 :].any(),
    )


def parse_example_bytes(serialized: bytes, source: str) -> tf.train.Example:
    """Decodes a serialized tf.Example; a decode failure is a `bad_record` ScenarioError."""
    try:
        return tf.train.Example.FromString(serialized)
    except DecodeError as e:
        raise ScenarioError(
            source, f"record is not a tf.Example: {e}", reason="bad_record"
        ) from None


def read_example_files(pattern: str) -> Iterator[RawScenario]:
    """Every scenario of every motion tf.Example TFRecord file matching `pattern`, in order."""
    for path in expand_pattern(pattern):
        for index, serialized in iter_records(path):
            source = f"{path}:{index}"
            yield read_motion_example(parse_example_bytes(serialized, source), source)
