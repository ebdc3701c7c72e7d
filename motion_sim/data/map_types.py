"""Map every source format's map-feature type onto `MapType`.

Three encodings reach us:
  * Scenario protos: a `map_pb2.MapFeature` oneof plus a per-kind enum.
  * WOMD tf.Example `roadgraph_samples/type` codes (also GPUDrive's `map_element_id`): the proto
    enums flattened into one integer -- lanes 0..3 as-is, road lines +5, road edges +14,
    17 stop sign, 18 crosswalk, 19 speed bump, 20 driveway.
  * GPUDrive JSON `type` strings, used only when `map_element_id` is missing.
Road-line colours are merged (the encoder cares whether a line may be crossed, not its paint).
"""

from __future__ import annotations

from waymo_open_dataset.protos import map_pb2

from motion_sim.data.datatypes import MapType

_LANE = {
    map_pb2.LaneCenter.TYPE_UNDEFINED: MapType.LANE_UNDEFINED,
    map_pb2.LaneCenter.TYPE_FREEWAY: MapType.LANE_FREEWAY,
    map_pb2.LaneCenter.TYPE_SURFACE_STREET: MapType.LANE_SURFACE_STREET,
    map_pb2.LaneCenter.TYPE_BIKE_LANE: MapType.LANE_BIKE,
}
_ROAD_LINE = {
    map_pb2.RoadLine.TYPE_UNKNOWN: MapType.ROAD_LINE_OTHER,
    map_pb2.RoadLine.TYPE_BROKEN_SINGLE_WHITE: MapType.ROAD_LINE_BROKEN,
    map_pb2.RoadLine.TYPE_BROKEN_SINGLE_YELLOW: MapType.ROAD_LINE_BROKEN,
    map_pb2.RoadLine.TYPE_SOLID_SINGLE_WHITE: MapType.ROAD_LINE_SOLID,
    map_pb2.RoadLine.TYPE_SOLID_SINGLE_YELLOW: MapType.ROAD_LINE_SOLID,
    map_pb2.RoadLine.TYPE_SOLID_DOUBLE_WHITE: MapType.ROAD_LINE_DOUBLE,
    map_pb2.RoadLine.TYPE_SOLID_DOUBLE_YELLOW: MapType.ROAD_LINE_DOUBLE,
    map_pb2.RoadLine.TYPE_BROKEN_DOUBLE_YELLOW: MapType.ROAD_LINE_DOUBLE,
    map_pb2.RoadLine.TYPE_PASSING_DOUBLE_YELLOW: MapType.ROAD_LINE_DOUBLE,
}
_ROAD_EDGE = {
    map_pb2.RoadEdge.TYPE_UNKNOWN: MapType.ROAD_EDGE_OTHER,
    map_pb2.RoadEdge.TYPE_ROAD_EDGE_BOUNDARY: MapType.ROAD_EDGE_BOUNDARY,
    map_pb2.RoadEdge.TYPE_ROAD_EDGE_MEDIAN: MapType.ROAD_EDGE_MEDIAN,
}
_ROAD_LINE_CODE_OFFSET = 5
_ROAD_EDGE_CODE_OFFSET = 14
_SINGLE_CODES = {
    17: MapType.STOP_SIGN,
    18: MapType.CROSSWALK,
    19: MapType.SPEED_BUMP,
    20: MapType.DRIVEWAY,
}
# Polygons are stored closed so their last edge is not lost when resampled.
POLYGON_TYPES = frozenset({MapType.CROSSWALK, MapType.SPEED_BUMP, MapType.DRIVEWAY})

_GPUDRIVE_NAMES = {
    "lane": MapType.LANE_UNDEFINED,
    "road_line": MapType.ROAD_LINE_OTHER,
    "road_edge": MapType.ROAD_EDGE_OTHER,
    "crosswalk": MapType.CROSSWALK,
    "stop_sign": MapType.STOP_SIGN,
    "speed_bump": MapType.SPEED_BUMP,
    "driveway": MapType.DRIVEWAY,
}


def from_proto_feature(feature: map_pb2.MapFeature) -> MapType | None:
    """MapType of a proto map feature, or None for kinds we do not encode (unset oneof)."""
    kind = feature.WhichOneof("feature_data")
    if kind == "lane":
        return _LANE.get(feature.lane.type, MapType.LANE_UNDEFINED)
    if kind == "road_line":
        return _ROAD_LINE.get(feature.road_line.type, MapType.ROAD_LINE_OTHER)
    if kind == "road_edge":
        return _ROAD_EDGE.get(feature.road_edge.type, MapType.ROAD_EDGE_OTHER)
    return {
        "crosswalk": MapType.CROSSWALK,
        "stop_sign": MapType.STOP_SIGN,
        "speed_bump": MapType.SPEED_BUMP,
        "driveway": MapType.DRIVEWAY,
    }.get(kind)


def from_womd_code(code: int) -> MapType | None:
    """MapType of a flattened WOMD roadgraph type code, or None for an unknown code."""
    code = int(code)
    if code in _LANE:
        return _LANE[code]
    if _ROAD_LINE_CODE_OFFSET <= code <= _ROAD_LINE_CODE_OFFSET + 8:
        return _ROAD_LINE[code - _ROAD_LINE_CODE_OFFSET]
    if _ROAD_EDGE_CODE_OFFSET <= code <= _ROAD_EDGE_CODE_OFFSET + 2:
        return _ROAD_EDGE[code - _ROAD_EDGE_CODE_OFFSET]
    return _SINGLE_CODES.get(code)


def from_gpudrive_name(name: str) -> MapType | None:
    """Coarse MapType from a GPUDrive road `type` string (fallback when no type code)."""
    return _GPUDRIVE_NAMES.get(name)
