"""`RawScenario` -> `scenario_pb2.Scenario`, the inverse of `scenario_reader.read_scenario_proto`.

Used to write synthetic scenarios as WOMD-format TFRecords (scale tests, benchmarks, bad-input
fixtures). Each `MapType` maps to one canonical proto type, so reading back yields the same
MapTypes (road-line colour is not representable in `MapType` and comes back as white/yellow
canonical choices).
"""

from __future__ import annotations

import numpy as np
from waymo_open_dataset.protos import map_pb2, scenario_pb2

from motion_sim.data.datatypes import CURRENT_INDEX, NUM_STEPS, STEP_HZ, MapType, RawScenario

_LANE = {
    MapType.LANE_FREEWAY: map_pb2.LaneCenter.TYPE_FREEWAY,
    MapType.LANE_SURFACE_STREET: map_pb2.LaneCenter.TYPE_SURFACE_STREET,
    MapType.LANE_BIKE: map_pb2.LaneCenter.TYPE_BIKE_LANE,
    MapType.LANE_UNDEFINED: map_pb2.LaneCenter.TYPE_UNDEFINED,
}
_ROAD_LINE = {
    MapType.ROAD_LINE_BROKEN: map_pb2.RoadLine.TYPE_BROKEN_SINGLE_WHITE,
    MapType.ROAD_LINE_SOLID: map_pb2.RoadLine.TYPE_SOLID_SINGLE_WHITE,
    MapType.ROAD_LINE_DOUBLE: map_pb2.RoadLine.TYPE_SOLID_DOUBLE_YELLOW,
    MapType.ROAD_LINE_OTHER: map_pb2.RoadLine.TYPE_UNKNOWN,
}
_ROAD_EDGE = {
    MapType.ROAD_EDGE_BOUNDARY: map_pb2.RoadEdge.TYPE_ROAD_EDGE_BOUNDARY,
    MapType.ROAD_EDGE_MEDIAN: map_pb2.RoadEdge.TYPE_ROAD_EDGE_MEDIAN,
    MapType.ROAD_EDGE_OTHER: map_pb2.RoadEdge.TYPE_UNKNOWN,
}
_POLYGONS = {
    MapType.CROSSWALK: "crosswalk",
    MapType.SPEED_BUMP: "speed_bump",
    MapType.DRIVEWAY: "driveway",
}


def _add_points(field, points: np.ndarray) -> None:
    for x, y, z in points:
        field.add(x=x, y=y, z=z)


def _add_map_feature(
    scenario: scenario_pb2.Scenario, feature_id: int, map_type: MapType, points: np.ndarray
) -> None:
    feature = scenario.map_features.add(id=feature_id)
    map_type = MapType(int(map_type))
    if map_type in _LANE:
        feature.lane.type = _LANE[map_type]
        _add_points(feature.lane.polyline, points)
    elif map_type in _ROAD_LINE:
        feature.road_line.type = _ROAD_LINE[map_type]
        _add_points(feature.road_line.polyline, points)
    elif map_type in _ROAD_EDGE:
        feature.road_edge.type = _ROAD_EDGE[map_type]
        _add_points(feature.road_edge.polyline, points)
    elif map_type == MapType.STOP_SIGN:
        x, y, z = points[0]
        feature.stop_sign.position.x, feature.stop_sign.position.y = x, y
        feature.stop_sign.position.z = z
    elif map_type in _POLYGONS:
        # RawScenario polygons are closed; protos store the open ring.
        if len(points) > 1 and np.array_equal(points[0], points[-1]):
            points = points[:-1]
        _add_points(getattr(feature, _POLYGONS[map_type]).polygon, points)
    else:
        raise ValueError(f"cannot write map type {map_type!r}")


def to_scenario_proto(raw: RawScenario) -> scenario_pb2.Scenario:
    """Builds the Scenario proto holding exactly `raw` (tracks, map, traffic lights); a
    `history_only` scene is written as the test split ships it, steps 0..CURRENT_INDEX."""
    num_steps = CURRENT_INDEX + 1 if raw.history_only else NUM_STEPS
    scenario = scenario_pb2.Scenario(
        scenario_id=raw.scenario_id,
        current_time_index=CURRENT_INDEX,
        sdc_track_index=int(raw.sdc_index),
    )
    scenario.timestamps_seconds.extend((np.arange(num_steps) / STEP_HZ).tolist())
    for i in range(len(raw.track_id)):
        track = scenario.tracks.add(id=int(raw.track_id[i]), object_type=int(raw.track_type[i]))
        for t in range(num_steps):
            x, y, z = raw.xyz[i, t]
            length, width, height = raw.size[i, t]
            track.states.add(
                center_x=x,
                center_y=y,
                center_z=z,
                length=length,
                width=width,
                height=height,
                heading=raw.heading[i, t],
                velocity_x=raw.velocity[i, t, 0],
                velocity_y=raw.velocity[i, t, 1],
                valid=bool(raw.valid[i, t]),
            )
    for row in raw.tracks_to_predict:
        scenario.tracks_to_predict.add(track_index=int(row))
    for feature_id, (map_type, points) in enumerate(raw.map_polylines):
        _add_map_feature(scenario, feature_id, map_type, points)
    for t in range(num_steps):
        dynamic = scenario.dynamic_map_states.add()
        for j in np.flatnonzero(raw.tl_valid[t]) if raw.tl_valid.size else []:
            lane_state = dynamic.lane_states.add(
                lane=int(raw.tl_lane_id[t, j]), state=int(raw.tl_state[t, j])
            )
            x, y, z = raw.tl_xyz[t, j]
            lane_state.stop_point.x, lane_state.stop_point.y = x, y
            lane_state.stop_point.z = z
    return scenario
