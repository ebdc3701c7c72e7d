"""Waymo `scenario_pb2.Scenario` protos (WOMD "scenario" format) -> `RawScenario`."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from waymo_open_dataset.protos import scenario_pb2

from motion_sim.data import map_types, scenario_decoder
from motion_sim.data.datatypes import (
    CURRENT_INDEX,
    NUM_HISTORY_STEPS,
    NUM_STEPS,
    RawScenario,
    ScenarioError,
)
from motion_sim.data.tfrecord_io import expand_pattern, iter_records

# Per-state fields, in the column order of the arrays we build.
_STATE_FIELDS = scenario_decoder.STATE_FIELDS


def _track_states(track: scenario_pb2.Track) -> tuple[np.ndarray, np.ndarray]:
    values = np.array(
        [[getattr(s, f) for f in _STATE_FIELDS] for s in track.states], dtype=np.float64
    ).reshape(-1, len(_STATE_FIELDS))
    valid = np.array([s.valid for s in track.states], dtype=bool)
    return values, valid


def _polyline(points) -> np.ndarray:
    return np.array([(p.x, p.y, p.z) for p in points], dtype=np.float64).reshape(-1, 3)


def _map_polylines(scenario: scenario_pb2.Scenario, points_by_row: dict | None = None) -> list:
    """(MapType, [P, 3] points) per feature; `points_by_row` holds pre-decoded points."""
    polylines = []
    for row, feature in enumerate(scenario.map_features):
        map_type = map_types.from_proto_feature(feature)
        if map_type is None:
            continue
        kind = feature.WhichOneof("feature_data")
        data = getattr(feature, kind)
        if kind == "stop_sign":
            points = _polyline([data.position])
        elif points_by_row is not None:
            points = points_by_row.get(row, np.zeros((0, 3)))
        elif map_type in map_types.POLYGON_TYPES:
            points = _polyline(data.polygon)
        else:
            points = _polyline(data.polyline)
        if map_type in map_types.POLYGON_TYPES and len(points) > 1:
            points = np.concatenate([points, points[:1]])
        if len(points):
            polylines.append((map_type, points))
    return polylines


def _traffic_lights(scenario: scenario_pb2.Scenario, num_steps: int):
    num_lanes = max([len(d.lane_states) for d in scenario.dynamic_map_states] + [0])
    lane_id = np.full((num_steps, num_lanes), -1, np.int64)
    state = np.zeros((num_steps, num_lanes), np.int32)
    xyz = np.zeros((num_steps, num_lanes, 3), np.float64)
    valid = np.zeros((num_steps, num_lanes), bool)
    for t, dynamic in enumerate(scenario.dynamic_map_states[:num_steps]):
        for j, lane_state in enumerate(dynamic.lane_states):
            lane_id[t, j] = lane_state.lane
            state[t, j] = lane_state.state
            p = lane_state.stop_point
            xyz[t, j] = (p.x, p.y, p.z)
            valid[t, j] = True
    return lane_id, state, xyz, valid


def read_scenario_proto(scenario: scenario_pb2.Scenario, source: str) -> RawScenario:
    """Converts one Scenario proto; raises `ScenarioError` if its shape is not WOMD's 91 steps
    (or the test split's 11: history only, `RawScenario.history_only`, steps 11..90 invalid).

    Reads states through the Python protobuf API; `read_scenario_bytes` gives the same result
    ~3x faster from the serialized bytes and is what batch jobs use.
    """
    n = len(scenario.tracks)
    states = np.zeros((n, NUM_STEPS, len(_STATE_FIELDS)), np.float64)
    valid = np.zeros((n, NUM_STEPS), bool)
    num_states = np.zeros(n, np.int64)
    for i, track in enumerate(scenario.tracks):
        values, track_valid = _track_states(track)
        num_states[i] = len(values)
        if len(values) in (NUM_STEPS, NUM_HISTORY_STEPS):
            states[i, : len(values)], valid[i, : len(values)] = values, track_valid
    return _assemble(scenario, source, states, valid, num_states, _map_polylines(scenario))


def read_scenario_bytes(serialized: bytes, source: str) -> RawScenario:
    """Parses and converts one serialized Scenario (bulk-decoding states and map points)."""
    scenario = parse_scenario_bytes(serialized, source)
    try:
        arrays = scenario_decoder.decode_scenario_arrays(serialized)
    except tf.errors.InvalidArgumentError as e:
        raise ScenarioError(
            source, f"record is not a Scenario proto: {e.message}", reason="bad_record"
        ) from None
    n = len(scenario.tracks)
    states = np.zeros((n, NUM_STEPS, len(_STATE_FIELDS)), np.float64)
    valid = np.zeros((n, NUM_STEPS), bool)
    num_states = arrays["num_states"].astype(np.int64)
    decoded_steps = arrays["states"].shape[1]
    if n and decoded_steps in (NUM_STEPS, NUM_HISTORY_STEPS):
        states[:, :decoded_steps], valid[:, :decoded_steps] = arrays["states"], arrays["valid"]
    polylines = _map_polylines(scenario, scenario_decoder.polylines_by_feature(arrays))
    return _assemble(scenario, source, states, valid, num_states, polylines)


def _assemble(
    scenario: scenario_pb2.Scenario,
    source: str,
    states: np.ndarray,
    valid: np.ndarray,
    num_states: np.ndarray,
    polylines: list,
) -> RawScenario:
    num_steps = len(scenario.timestamps_seconds)
    if num_steps not in (NUM_STEPS, NUM_HISTORY_STEPS):
        raise ScenarioError(
            source,
            f"scenario {scenario.scenario_id!r} has {num_steps} "
            f"timestamps, expected {NUM_STEPS} (or {NUM_HISTORY_STEPS} "
            f"for a history-only test-split scene)",
            reason="bad_length",
        )
    if scenario.current_time_index != CURRENT_INDEX:
        raise ScenarioError(
            source,
            f"scenario {scenario.scenario_id!r} has current_time_index "
            f"{scenario.current_time_index}, expected {CURRENT_INDEX}",
            reason="bad_length",
        )
    if not scenario.tracks:
        raise ScenarioError(
            source, f"scenario {scenario.scenario_id!r} has no tracks", reason="no_valid_agents"
        )
    n = len(scenario.tracks)
    bad = np.flatnonzero(num_states != num_steps)
    if len(bad):
        raise ScenarioError(
            source,
            f"track {scenario.tracks[bad[0]].id} has "
            f"{num_states[bad[0]]} states, expected {num_steps} (the "
            f"scenario's timestamps)",
            reason="bad_length",
        )
    if not 0 <= scenario.sdc_track_index < n:
        raise ScenarioError(
            source,
            f"sdc_track_index {scenario.sdc_track_index} outside [0, {n})",
            reason="sdc_invalid",
        )
    tl_lane_id, tl_state, tl_xyz, tl_valid = _traffic_lights(scenario, NUM_STEPS)
    return RawScenario(
        scenario_id=scenario.scenario_id,
        source=source,
        track_id=np.array([t.id for t in scenario.tracks], np.int64),
        track_type=np.array([t.object_type for t in scenario.tracks], np.int32),
        xyz=states[..., 0:3],
        velocity=states[..., 3:5],
        heading=states[..., 5],
        size=states[..., 6:9],
        valid=valid,
        sdc_index=int(scenario.sdc_track_index),
        tracks_to_predict=np.array([p.track_index for p in scenario.tracks_to_predict], np.int32),
        map_polylines=polylines,
        tl_lane_id=tl_lane_id,
        tl_state=tl_state,
        tl_xyz=tl_xyz,
        tl_valid=tl_valid,
        history_only=num_steps == NUM_HISTORY_STEPS,
    )


def parse_scenario_bytes(serialized: bytes, source: str) -> scenario_pb2.Scenario:
    """Decodes a serialized Scenario; a decode failure is a `bad_record` ScenarioError."""
    try:
        return scenario_pb2.Scenario.FromString(serialized)
    except DecodeError as e:
        raise ScenarioError(
            source, f"record is not a Scenario proto: {e}", reason="bad_record"
        ) from None


def iter_scenario_records(path: str) -> Iterator[tuple[str, bytes]]:
    """(source "file:record", serialized bytes) for every record of one TFRecord file."""
    for index, serialized in iter_records(path):
        yield f"{path}:{index}", serialized


def read_scenario_files(pattern: str) -> Iterator[RawScenario]:
    """Every scenario of every TFRecord file matching `pattern` (local or gs://), in order.

    Raises `ScenarioError` on the first bad scenario; batch jobs that should skip bad records
    use `iter_scenario_records` + `read_scenario_proto` and catch it themselves.
    """
    for path in expand_pattern(pattern):
        for source, serialized in iter_scenario_records(path):
            yield read_scenario_bytes(serialized, source)
