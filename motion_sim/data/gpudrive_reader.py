"""GPUDrive / Nocturne scenario JSON (every published layout) -> `RawScenario`.

Layout (GPUDrive's Waymo converter; Nocturne's is the same minus the fields marked *):
  objects[i]: position [{x, y, z*}] per step, velocity [{x, y}], heading [per step], valid
    [per step], width, length, height*, type ("vehicle" | "pedestrian" | "cyclist" | ...), id*.
  roads[j]: geometry [{x, y, z*}], type (string), id*, map_element_id* (WOMD roadgraph code).
  tl_states: {lane_id: {state: [names or ints], x, y, z (optional), time_index (optional):
    one entry per observed step}} (Nocturne/GPUDrive's MapReader layout), or a list of such
    dicts each carrying its own `lane_id` (a list per entry, or one value).
  metadata*: sdc_track_index, tracks_to_predict [{track_index, difficulty}], objects_of_interest.
  scenario_id*, name (the source file name).

Published versions differ; every gap below is filled by a stated default, recorded in
`RawScenario.defaults_applied` (and `sdc_inferred`), which `preprocess` counts in stats.json:
  * Steps: 91 (train/validation) or 11 (test split: history only, `history_only=True`, steps
    11..90 invalid). Any other length is a `bad_length` error naming file and object.
  * `object_id_from_row`: an object without `id` gets its row index.
  * `height_by_type`: an object without `height` gets `DEFAULT_HEIGHT_M[type]`, the median
    height per type over the 401 objects with heights in the 12 real GPUDrive files bundled in
    tests/testdata/gpudrive/ (vehicle 1.67, pedestrian 1.70, cyclist 1.78 m).
  * `heading_degrees`: Nocturne and the early GPUDrive exports (objects without `id`) wrote
    headings in degrees, later ones in radians. The unit is decided from the data: the one that
    agrees with the velocity direction over moving agent-steps (speed > 2 m/s); with fewer than
    `_MIN_MOVING_STEPS` of those, by layout (objects without `id` -> degrees).
  * SDC (`sdc_inferred`): `metadata.sdc_track_index` when it is an object row; else the object
    GPUDrive marks with `is_sdc`; else the valid vehicle (any valid object if there is no
    vehicle) nearest the map's centre (centre of the bounding box of all road points, or of the
    valid objects when there are no roads) at the current step.
  * `tracks_to_predict` absent or empty: none (the scene still simulates every valid agent).
  * `road_id_from_row`: roads without `id` are named by their row index in errors.
  * `scenario_id_from_file_name`: no `scenario_id` -> the file name without `.json` (`.json.gz`),
    or the JSON's `name` field when the scenario does not come from a file.
A field that is needed and has no sensible default (positions, velocities, headings, validity,
length, width) is a `ScenarioError` naming the file and the object.
"""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import tensorflow as tf

from motion_sim.data import map_types
from motion_sim.data.datatypes import (
    CURRENT_INDEX,
    NUM_HISTORY_STEPS,
    NUM_STEPS,
    AgentType,
    RawScenario,
    ScenarioError,
    TrafficLightState,
)
from motion_sim.data.frames import wrap_angle

_AGENT_TYPES = {
    "vehicle": AgentType.VEHICLE,
    "pedestrian": AgentType.PEDESTRIAN,
    "cyclist": AgentType.CYCLIST,
}
_LIGHT_STATES = {s.name.lower(): s for s in TrafficLightState}
# Median box height per type (m) over the real files that carry heights; see module doc.
DEFAULT_HEIGHT_M = {
    AgentType.VEHICLE: 1.67,
    AgentType.PEDESTRIAN: 1.70,
    AgentType.CYCLIST: 1.78,
    AgentType.OTHER: 1.67,
    AgentType.UNSET: 1.67,
}
_MIN_MOVING_STEPS = 10
_MOVING_SPEED = 2.0  # m/s: below this the velocity direction is too noisy to check headings


def _xyz(points: list, source: str, what: str) -> np.ndarray:
    try:
        return np.array([(p["x"], p["y"], p.get("z", 0.0)) for p in points], np.float64).reshape(
            -1, 3
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ScenarioError(
            source, f"{what}: malformed point list ({e!r})", reason="bad_record"
        ) from None


def _steps(values, num_steps: int, source: str, what: str) -> np.ndarray:
    values = np.asarray(values)
    if len(values) != num_steps:
        raise ScenarioError(
            source, f"{what} has {len(values)} steps, expected {num_steps}", reason="bad_length"
        )
    return values


def _num_steps(objects: list, source: str) -> int:
    """91 (full scene) or 11 (history only), from the first object's positions."""
    first = objects[0]
    what = f"object {first.get('id', 0)}"
    if not isinstance(first, dict) or not isinstance(first.get("position"), list):
        raise ScenarioError(source, f"{what} lacks field 'position'", reason="bad_record")
    n = len(first["position"])
    if n not in (NUM_STEPS, NUM_HISTORY_STEPS):
        raise ScenarioError(
            source,
            f"{what} has {n} steps, expected {NUM_STEPS} (or "
            f"{NUM_HISTORY_STEPS} for a history-only test-split scene)",
            reason="bad_length",
        )
    return n


def _objects(objects: list, num_steps: int, source: str, defaults: set):
    """Per-object arrays over NUM_STEPS (steps past `num_steps` stay invalid)."""
    n = len(objects)
    xyz = np.zeros((n, NUM_STEPS, 3))
    velocity = np.zeros((n, NUM_STEPS, 2))
    heading = np.zeros((n, NUM_STEPS))
    size = np.zeros((n, NUM_STEPS, 3))
    valid = np.zeros((n, NUM_STEPS), bool)
    track_id = np.zeros(n, np.int64)
    track_type = np.zeros(n, np.int32)
    s = num_steps
    for i, obj in enumerate(objects):
        what = f"object {obj.get('id', i)}" if isinstance(obj, dict) else f"object {i}"
        if not isinstance(obj, dict):
            raise ScenarioError(source, f"{what} is not a JSON object", reason="bad_record")
        track_type[i] = _AGENT_TYPES.get(str(obj.get("type", "")).lower(), AgentType.OTHER)
        try:
            xyz[i, :s] = _steps(_xyz(obj["position"], source, what), s, source, what)
            velocity[i, :s] = _steps(_xyz(obj["velocity"], source, what)[:, :2], s, source, what)
            heading[i, :s] = _steps(np.asarray(obj["heading"], np.float64), s, source, what)
            valid[i, :s] = _steps(np.asarray(obj["valid"], bool), s, source, what)
            length, width = float(obj["length"]), float(obj["width"])
        except KeyError as e:
            raise ScenarioError(source, f"{what} lacks field {e}", reason="bad_record") from None
        except ScenarioError:
            raise
        except (TypeError, ValueError) as e:
            raise ScenarioError(
                source, f"{what}: malformed field ({e})", reason="bad_record"
            ) from None
        if "height" in obj:
            height = float(obj["height"])
        else:
            height = DEFAULT_HEIGHT_M[AgentType(track_type[i])]
            defaults.add("height_by_type")
        size[i] = (length, width, height)
        if "id" in obj:
            track_id[i] = int(obj["id"])
        else:
            track_id[i] = i
            defaults.add("object_id_from_row")
    if len(set(track_id.tolist())) != n:
        dup = next(t for t in track_id if (track_id == t).sum() > 1)
        raise ScenarioError(source, f"object id {dup} appears more than once", reason="bad_record")
    return track_id, track_type, xyz, velocity, heading, size, valid


def _headings_in_degrees(objects: list, velocity, heading, valid) -> bool:
    """True if the file's headings are degrees (see module doc for the rule)."""
    speed = np.linalg.norm(velocity, axis=-1)
    moving = valid & (speed > _MOVING_SPEED) & np.isfinite(heading)
    if moving.sum() >= _MIN_MOVING_STEPS:
        direction = np.arctan2(velocity[..., 1], velocity[..., 0])[moving]

        def disagreement(h):
            return np.median(np.abs(wrap_angle(h - direction)))

        return disagreement(np.radians(heading[moving])) < disagreement(heading[moving])
    return not all("id" in obj for obj in objects)


def _roads(roads: list, source: str, defaults: set) -> list:
    polylines = []
    for j, road in enumerate(roads):
        if "id" not in road:
            defaults.add("road_id_from_row")
        code = road.get("map_element_id")
        map_type = None
        if code is not None and str(code).lstrip("-").isdigit():
            map_type = map_types.from_womd_code(int(code))
        if map_type is None:
            map_type = map_types.from_gpudrive_name(str(road.get("type", "")))
        if map_type is None:
            continue
        points = _xyz(road.get("geometry", []), source, f"road {road.get('id', j)}")
        if (
            map_type in map_types.POLYGON_TYPES
            and len(points) > 1
            and not np.array_equal(points[0], points[-1])
        ):
            points = np.concatenate([points, points[:1]])
        if len(points):
            polylines.append((map_type, points))
    return polylines


def _light_state(value) -> int:
    if isinstance(value, str):
        return int(_LIGHT_STATES.get(value.lower(), TrafficLightState.UNKNOWN))
    return int(value)


def _traffic_lights(tl_states, source: str):
    """Both layouts: {lane_id: {state, x, y, z, time_index}} or [{lane_id, state, ...}]."""
    if isinstance(tl_states, dict):
        items = sorted(tl_states.items(), key=lambda kv: (len(str(kv[0])), str(kv[0])))
    elif isinstance(tl_states, list):
        items = [
            (
                light.get("lane_id", [-1])[0]
                if isinstance(light.get("lane_id"), list)
                else light.get("lane_id", -1),
                light,
            )
            for light in tl_states
        ]
    else:
        raise ScenarioError(
            source,
            f"tl_states is a {type(tl_states).__name__}, expected a dict or a list",
            reason="bad_record",
        )
    num_lanes = len(items)
    lane_id = np.full((NUM_STEPS, num_lanes), -1, np.int64)
    state = np.zeros((NUM_STEPS, num_lanes), np.int32)
    xyz = np.zeros((NUM_STEPS, num_lanes, 3))
    valid = np.zeros((NUM_STEPS, num_lanes), bool)
    for j, (lane, light) in enumerate(items):
        try:
            states = light.get("state", [])
            steps = light.get("time_index", range(len(states)))
            lanes = light.get("lane_id", [lane] * len(states))
            if not isinstance(lanes, list):
                lanes = [lanes] * len(states)
            for k, t in enumerate(steps):
                if 0 <= int(t) < NUM_STEPS:
                    lane_id[t, j] = int(lanes[k])
                    state[t, j] = _light_state(states[k])
                    xyz[t, j] = (
                        light["x"][k],
                        light["y"][k],
                        light.get("z", [0.0] * len(states))[k],
                    )
                    valid[t, j] = True
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise ScenarioError(
                source, f"traffic light of lane {lane}: malformed ({e!r})", reason="bad_record"
            ) from None
    return lane_id, state, xyz, valid


def _infer_sdc(objects: list, track_type, xyz, valid, polylines) -> int | None:
    """Row of the ego GPUDrive marks (`is_sdc`), else of the valid vehicle (else valid object)
    nearest the map's centre at the current step; None if nothing is valid then."""
    marked = [i for i, obj in enumerate(objects) if obj.get("is_sdc") in (True, 1, "True")]
    if len(marked) == 1:
        return marked[0]
    current = valid[:, CURRENT_INDEX]
    candidates = np.flatnonzero(current & (track_type == AgentType.VEHICLE))
    if not len(candidates):
        candidates = np.flatnonzero(current)
    if not len(candidates):
        return None
    if polylines:
        points = np.concatenate([p[:, :2] for _, p in polylines])
    else:
        points = xyz[current, CURRENT_INDEX, :2]
    centre = (points.min(axis=0) + points.max(axis=0)) / 2.0
    d = np.linalg.norm(xyz[candidates, CURRENT_INDEX, :2] - centre, axis=-1)
    return int(candidates[np.argmin(d)])


def read_gpudrive_scenario(scenario: dict, source: str, file_name: str = "") -> RawScenario:
    """Converts one parsed GPUDrive/Nocturne JSON scenario (any published layout).

    `file_name` (the JSON's base name, without `.gz`) is the scenario id of last resort.
    """
    objects = scenario.get("objects")
    if not objects or not isinstance(objects, list):
        raise ScenarioError(source, "no objects", reason="no_valid_agents")
    defaults: set = set()
    num_steps = _num_steps(objects, source)
    track_id, track_type, xyz, velocity, heading, size, valid = _objects(
        objects, num_steps, source, defaults
    )
    if _headings_in_degrees(objects, velocity, heading, valid):
        heading = np.radians(heading)
        defaults.add("heading_degrees")
    polylines = _roads(scenario.get("roads") or [], source, defaults)
    metadata = scenario.get("metadata") or {}
    sdc_index = metadata.get("sdc_track_index")
    sdc_inferred = False
    if (
        sdc_index is None
        or not str(sdc_index).lstrip("-").isdigit()
        or not 0 <= int(sdc_index) < len(objects)
    ):
        sdc_index = _infer_sdc(objects, track_type, xyz, valid, polylines)
        sdc_inferred = True
        if sdc_index is None:
            raise ScenarioError(
                source,
                f"no SDC: metadata.sdc_track_index is "
                f"{metadata.get('sdc_track_index')!r} and no object is "
                f"valid at the current step {CURRENT_INDEX}",
                reason="no_valid_agents",
            )
    to_predict = [
        int(t["track_index"]) if isinstance(t, dict) else int(t)
        for t in metadata.get("tracks_to_predict") or []
    ]
    tl_lane_id, tl_state, tl_xyz, tl_valid = _traffic_lights(
        scenario.get("tl_states") or {}, source
    )
    scenario_id = scenario.get("scenario_id")
    if not scenario_id:
        name = file_name or str(scenario.get("name") or "")
        scenario_id = name.removesuffix(".json")
        defaults.add("scenario_id_from_file_name")
    return RawScenario(
        scenario_id=str(scenario_id),
        source=source,
        track_id=track_id,
        track_type=track_type,
        xyz=xyz,
        velocity=velocity,
        heading=heading,
        size=size,
        valid=valid,
        sdc_index=int(sdc_index),
        tracks_to_predict=np.array([t for t in to_predict if 0 <= t < len(objects)], np.int32),
        map_polylines=polylines,
        tl_lane_id=tl_lane_id,
        tl_state=tl_state,
        tl_xyz=tl_xyz,
        tl_valid=tl_valid,
        history_only=num_steps == NUM_HISTORY_STEPS,
        sdc_inferred=sdc_inferred,
        defaults_applied=tuple(sorted(defaults)),
    )


def read_gpudrive_file(path: str) -> RawScenario:
    """Reads one GPUDrive JSON file (local or gs://; `.json.gz` is gunzipped); the source is
    the path itself."""
    source = f"{path}:0"
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        if path.endswith(".gz"):
            data = gzip.decompress(data)
        scenario = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, gzip.BadGzipFile, EOFError) as e:
        raise ScenarioError(source, f"not valid JSON: {e}", reason="bad_record") from None
    if not isinstance(scenario, dict):
        raise ScenarioError(source, "top-level JSON is not an object", reason="bad_record")
    name = os.path.basename(path)
    return read_gpudrive_scenario(scenario, source, name.removesuffix(".gz"))
