"""GPUDrive / Nocturne scenario JSON -> `RawScenario`.

Layout read here (GPUDrive's Waymo converter):
  objects[i]: position [{x,y,z}]*91, velocity [{x,y}]*91, heading [91], valid [91], width,
    length, height (scalars), type ("vehicle" | "pedestrian" | "cyclist" | ...), id.
  roads[j]: geometry [{x,y,z}], type (string), map_element_id (WOMD roadgraph type code).
  tl_states: {lane_id: {state: [names or ints], x, y, z (optional), time_index (optional): one
    entry per observed step}} (the layout Nocturne/GPUDrive's MapReader reads; a list of such
    dicts is accepted too).
  metadata: sdc_track_index, tracks_to_predict [{track_index, difficulty}].
"""
from __future__ import annotations

import json
from typing import Iterator

import numpy as np
import tensorflow as tf

from motion_sim.data import map_types
from motion_sim.data.datatypes import (NUM_STEPS, AgentType, RawScenario, ScenarioError,
                                       TrafficLightState)
from motion_sim.data.tfrecord_io import expand_pattern

_AGENT_TYPES = {"vehicle": AgentType.VEHICLE, "pedestrian": AgentType.PEDESTRIAN,
                "cyclist": AgentType.CYCLIST}
_LIGHT_STATES = {s.name.lower(): s for s in TrafficLightState}


def _xyz(points: list, source: str, what: str) -> np.ndarray:
    try:
        return np.array([(p["x"], p["y"], p.get("z", 0.0)) for p in points],
                        np.float64).reshape(-1, 3)
    except (KeyError, TypeError) as e:
        raise ScenarioError(source, f"{what}: malformed point list ({e!r})",
                            reason="bad_record") from None


def _steps(values, source: str, what: str) -> np.ndarray:
    values = np.asarray(values)
    if len(values) != NUM_STEPS:
        raise ScenarioError(source, f"{what} has {len(values)} steps, expected {NUM_STEPS}",
                            reason="bad_length")
    return values


def _objects(objects: list, source: str):
    n = len(objects)
    xyz = np.zeros((n, NUM_STEPS, 3))
    velocity = np.zeros((n, NUM_STEPS, 2))
    heading = np.zeros((n, NUM_STEPS))
    size = np.zeros((n, NUM_STEPS, 3))
    valid = np.zeros((n, NUM_STEPS), bool)
    track_id = np.zeros(n, np.int64)
    track_type = np.zeros(n, np.int32)
    for i, obj in enumerate(objects):
        what = f"object {obj.get('id', i)}"
        try:
            xyz[i] = _steps(_xyz(obj["position"], source, what), source, what)
            velocity[i] = _steps(_xyz(obj["velocity"], source, what)[:, :2], source, what)
            heading[i] = _steps(np.asarray(obj["heading"], np.float64), source, what)
            valid[i] = _steps(np.asarray(obj["valid"], bool), source, what)
            size[i] = (obj["length"], obj["width"], obj["height"])
            track_id[i] = int(obj["id"])
        except KeyError as e:
            raise ScenarioError(source, f"{what} lacks field {e}", reason="bad_record") from None
        track_type[i] = _AGENT_TYPES.get(str(obj.get("type", "")).lower(), AgentType.OTHER)
    return track_id, track_type, xyz, velocity, heading, size, valid


def _roads(roads: list, source: str) -> list:
    polylines = []
    for j, road in enumerate(roads):
        code = road.get("map_element_id")
        map_type = None
        if code is not None and str(code).lstrip("-").isdigit():
            map_type = map_types.from_womd_code(int(code))
        if map_type is None:
            map_type = map_types.from_gpudrive_name(str(road.get("type", "")))
        if map_type is None:
            continue
        points = _xyz(road.get("geometry", []), source, f"road {road.get('id', j)}")
        if map_type in map_types.POLYGON_TYPES and len(points) > 1 \
                and not np.array_equal(points[0], points[-1]):
            points = np.concatenate([points, points[:1]])
        if len(points):
            polylines.append((map_type, points))
    return polylines


def _light_state(value) -> int:
    if isinstance(value, str):
        return int(_LIGHT_STATES.get(value.lower(), TrafficLightState.UNKNOWN))
    return int(value)


def _traffic_lights(tl_states: dict, source: str):
    num_lanes = len(tl_states)
    lane_id = np.full((NUM_STEPS, num_lanes), -1, np.int64)
    state = np.zeros((NUM_STEPS, num_lanes), np.int32)
    xyz = np.zeros((NUM_STEPS, num_lanes, 3))
    valid = np.zeros((NUM_STEPS, num_lanes), bool)
    items = sorted(tl_states.items()) if isinstance(tl_states, dict) else \
        [(light.get("lane_id", [-1])[0] if isinstance(light.get("lane_id"), list)
          else light.get("lane_id", -1), light) for light in tl_states]
    for j, (lane, light) in enumerate(items):
        states = light.get("state", [])
        steps = light.get("time_index", range(len(states)))
        for k, t in enumerate(steps):
            if 0 <= int(t) < NUM_STEPS:
                lane_id[t, j] = int(light.get("lane_id", [lane] * len(states))[k])
                state[t, j] = _light_state(states[k])
                xyz[t, j] = (light["x"][k], light["y"][k], light.get("z", [0.0] * len(states))[k])
                valid[t, j] = True
    return lane_id, state, xyz, valid


def read_gpudrive_scenario(scenario: dict, source: str) -> RawScenario:
    """Converts one parsed GPUDrive JSON scenario."""
    objects = scenario.get("objects")
    if not objects:
        raise ScenarioError(source, "no objects", reason="no_valid_agents")
    track_id, track_type, xyz, velocity, heading, size, valid = _objects(objects, source)
    metadata = scenario.get("metadata", {})
    sdc_index = metadata.get("sdc_track_index")
    if sdc_index is None or not 0 <= int(sdc_index) < len(objects):
        raise ScenarioError(source, f"metadata.sdc_track_index {sdc_index!r} is not an object row",
                            reason="sdc_invalid")
    to_predict = [int(t["track_index"]) if isinstance(t, dict) else int(t)
                  for t in metadata.get("tracks_to_predict", [])]
    tl_lane_id, tl_state, tl_xyz, tl_valid = _traffic_lights(scenario.get("tl_states") or {},
                                                             source)
    return RawScenario(
        scenario_id=str(scenario.get("scenario_id", scenario.get("name", ""))),
        source=source, track_id=track_id, track_type=track_type, xyz=xyz, velocity=velocity,
        heading=heading, size=size, valid=valid, sdc_index=int(sdc_index),
        tracks_to_predict=np.array([t for t in to_predict if 0 <= t < len(objects)], np.int32),
        map_polylines=_roads(scenario.get("roads", []), source),
        tl_lane_id=tl_lane_id, tl_state=tl_state, tl_xyz=tl_xyz, tl_valid=tl_valid)


def read_gpudrive_file(path: str) -> RawScenario:
    """Reads one GPUDrive JSON file (local or gs://); the source is the path itself."""
    source = f"{path}:0"
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            scenario = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ScenarioError(source, f"not valid JSON: {e}", reason="bad_record") from None
    if not isinstance(scenario, dict):
        raise ScenarioError(source, "top-level JSON is not an object", reason="bad_record")
    return read_gpudrive_scenario(scenario, source)


def read_gpudrive_files(pattern: str) -> Iterator[RawScenario]:
    """Every GPUDrive JSON scenario matching `pattern`, in path order."""
    for path in expand_pattern(pattern):
        yield read_gpudrive_file(path)
