"""Typed scene structures shared by readers, tokenizer, model and metrics.

Two levels:
  * `RawScenario`: what a format reader (Scenario proto, tf.Example, GPUDrive JSON) produces --
    every track and map feature in *world* coordinates, variable sizes, numpy.
  * `Scene`: the fixed-shape, scene-centric tensors the model trains on, built from a
    `RawScenario` by `scene_builder.build_scene`. `tf.nest` understands both (NamedTuples), so a
    batch of scenes is just a `Scene` whose leaves have a leading batch axis.

Time axis: 91 steps at 10 Hz; index 10 is the current step (1.1 s of history, 8 s of future).
"""

from __future__ import annotations

import enum
from typing import Mapping, NamedTuple

import numpy as np

STEP_HZ = 10
NUM_HISTORY_STEPS = 11  # indices 0..10, 10 is "current"
CURRENT_INDEX = NUM_HISTORY_STEPS - 1
NUM_FUTURE_STEPS = 80  # WOSAC simulates indices 11..90
NUM_STEPS = NUM_HISTORY_STEPS + NUM_FUTURE_STEPS

MAX_AGENTS = 128
MAX_POLYLINES = 256
POINTS_PER_POLYLINE = 20
MAX_TRAFFIC_LIGHTS = 32


class AgentType(enum.IntEnum):
    """Same integers as waymo `scenario_pb2.Track.ObjectType`."""

    UNSET = 0
    VEHICLE = 1
    PEDESTRIAN = 2
    CYCLIST = 3
    OTHER = 4


class MapType(enum.IntEnum):
    """Map polyline classes the encoder embeds (0 = padding)."""

    PAD = 0
    LANE_FREEWAY = 1
    LANE_SURFACE_STREET = 2
    LANE_BIKE = 3
    LANE_UNDEFINED = 4
    ROAD_LINE_BROKEN = 5
    ROAD_LINE_SOLID = 6
    ROAD_LINE_DOUBLE = 7
    ROAD_LINE_OTHER = 8
    ROAD_EDGE_BOUNDARY = 9
    ROAD_EDGE_MEDIAN = 10
    ROAD_EDGE_OTHER = 11
    CROSSWALK = 12
    STOP_SIGN = 13
    SPEED_BUMP = 14
    DRIVEWAY = 15


NUM_MAP_TYPES = len(MapType)


class TrafficLightState(enum.IntEnum):
    """Same integers as waymo `map_pb2.TrafficSignalLaneState.State`."""

    UNKNOWN = 0
    ARROW_STOP = 1
    ARROW_CAUTION = 2
    ARROW_GO = 3
    STOP = 4
    CAUTION = 5
    GO = 6
    FLASHING_STOP = 7
    FLASHING_CAUTION = 8


NUM_TRAFFIC_LIGHT_STATES = len(TrafficLightState)


class RawScenario(NamedTuple):
    """One scenario in world coordinates, as read from any source format.

    Attributes (N tracks, S = NUM_STEPS = 91, F map features, L traffic-light lanes):
      scenario_id: str.
      source: str, "<file>:<record index>" -- named in every error about this scenario.
      track_id: [N] int64 object ids.
      track_type: [N] int32 `AgentType`.
      xyz: [N, S, 3] float64 world position (m).
      velocity: [N, S, 2] float64 world velocity (m/s).
      heading: [N, S] float64 world yaw (rad).
      size: [N, S, 3] float64 length, width, height (m).
      valid: [N, S] bool.
      sdc_index: int, row of the self-driving car in the track arrays.
      tracks_to_predict: [K] int32 track rows the challenge asks to predict.
      map_polylines: list of (MapType, [P_i, 3] float64 world points); polygons (crosswalks,
        speed bumps, driveways) are closed; stop signs are a single point.
      tl_lane_id: [S, L] int64 lane id per traffic-light slot (-1 = none).
      tl_state: [S, L] int32 `TrafficLightState`.
      tl_xyz: [S, L, 3] float64 stop-point position.
      tl_valid: [S, L] bool.
      history_only: True for a test-split scene: the source holds only steps 0..CURRENT_INDEX
        (no logged future); the arrays still have S steps, all invalid after CURRENT_INDEX.
      sdc_inferred: True when the source did not say which track is the SDC and the reader
        picked it by its stated rule (see `gpudrive_reader`).
      defaults_applied: names of the documented defaults a reader filled in for fields the
        source lacks (e.g. "object_id_from_row", "height_by_type"); counted by `preprocess`.
    """

    scenario_id: str
    source: str
    track_id: np.ndarray
    track_type: np.ndarray
    xyz: np.ndarray
    velocity: np.ndarray
    heading: np.ndarray
    size: np.ndarray
    valid: np.ndarray
    sdc_index: int
    tracks_to_predict: np.ndarray
    map_polylines: list
    tl_lane_id: np.ndarray
    tl_state: np.ndarray
    tl_xyz: np.ndarray
    tl_valid: np.ndarray
    history_only: bool = False
    sdc_inferred: bool = False
    defaults_applied: tuple = ()


class Scene(NamedTuple):
    """Fixed-shape, scene-centric model input (A = MAX_AGENTS, S = 91, P, L, T as constants).

    Frame: origin at the SDC's position at CURRENT_INDEX, x axis along its heading then. World
    = R(frame_yaw) @ scene + frame_origin; `frames.to_world` inverts exactly (float64).
    Agents: only tracks valid at CURRENT_INDEX (the set WOSAC simulates); row 0 is the SDC, then
    `tracks_to_predict`, then nearest to the SDC. Padding rows have agent_mask False.

    Attributes:
      scenario_id: [] string.
      agent_xy: [A, S, 2] float32 scene-frame position (m).
      agent_z: [A, S] float32 height relative to frame_origin z (m).
      agent_vel: [A, S, 2] float32 scene-frame velocity (m/s).
      agent_heading: [A, S] float32 scene-frame yaw (rad, wrapped to [-pi, pi)).
      agent_size: [A, 3] float32 length, width, height at CURRENT_INDEX (m).
      agent_type: [A] int32 `AgentType`.
      agent_valid: [A, S] bool log validity.
      agent_mask: [A] bool, slot holds a real agent (valid at CURRENT_INDEX).
      agent_id: [A] int64 object id (-1 for padding).
      tracks_to_predict: [A] bool.
      sdc_index: [] int32 row of the SDC (0 unless the scene has none valid).
      num_agents_dropped: [] int32 agents valid at CURRENT_INDEX beyond MAX_AGENTS.
      map_xy: [P, L, 2] float32 resampled polyline points.
      map_type: [P] int32 `MapType` (PAD for empty slots).
      map_valid: [P, L] bool.
      tl_xy: [S, T, 2] float32 traffic-light stop points.
      tl_state: [S, T] int32 `TrafficLightState`.
      tl_valid: [S, T] bool.
      frame_origin: [3] float64 world xyz of the scene origin.
      frame_yaw: [] float64 world yaw of the scene x axis.
    """

    scenario_id: np.ndarray
    agent_xy: np.ndarray
    agent_z: np.ndarray
    agent_vel: np.ndarray
    agent_heading: np.ndarray
    agent_size: np.ndarray
    agent_type: np.ndarray
    agent_valid: np.ndarray
    agent_mask: np.ndarray
    agent_id: np.ndarray
    tracks_to_predict: np.ndarray
    sdc_index: np.ndarray
    num_agents_dropped: np.ndarray
    map_xy: np.ndarray
    map_type: np.ndarray
    map_valid: np.ndarray
    tl_xy: np.ndarray
    tl_state: np.ndarray
    tl_valid: np.ndarray
    frame_origin: np.ndarray
    frame_yaw: np.ndarray


def scene_fields(scene: Scene | Mapping) -> Mapping:
    """A `Scene`, or the dict of its fields that tf.data yields, as a name -> value mapping.

    The one place that accepts both forms: every consumer reads fields through this.
    """
    return scene._asdict() if isinstance(scene, Scene) else scene


def scene_spec() -> dict:
    """Name -> (shape, numpy dtype) of every `Scene` field (unbatched)."""
    A, S, P, L, T = MAX_AGENTS, NUM_STEPS, MAX_POLYLINES, POINTS_PER_POLYLINE, MAX_TRAFFIC_LIGHTS
    return {
        "scenario_id": ((), np.object_),
        "agent_xy": ((A, S, 2), np.float32),
        "agent_z": ((A, S), np.float32),
        "agent_vel": ((A, S, 2), np.float32),
        "agent_heading": ((A, S), np.float32),
        "agent_size": ((A, 3), np.float32),
        "agent_type": ((A,), np.int32),
        "agent_valid": ((A, S), np.bool_),
        "agent_mask": ((A,), np.bool_),
        "agent_id": ((A,), np.int64),
        "tracks_to_predict": ((A,), np.bool_),
        "sdc_index": ((), np.int32),
        "num_agents_dropped": ((), np.int32),
        "map_xy": ((P, L, 2), np.float32),
        "map_type": ((P,), np.int32),
        "map_valid": ((P, L), np.bool_),
        "tl_xy": ((S, T, 2), np.float32),
        "tl_state": ((S, T), np.int32),
        "tl_valid": ((S, T), np.bool_),
        "frame_origin": ((3,), np.float64),
        "frame_yaw": ((), np.float64),
    }


class ScenarioError(ValueError):
    """Bad input data; the message always names the source file/record and what is wrong."""

    def __init__(self, source: str, what: str, reason: str = "invalid"):
        super().__init__(f"{source}: {what}")
        self.source = source
        self.reason = reason  # short key used to count skips in stats.json
