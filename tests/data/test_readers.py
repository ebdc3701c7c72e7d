"""Each reader on its real bundled sample, checked against values read straight from the file."""

import collections
import json

import numpy as np
import pytest
import tensorflow as tf
from waymo_open_dataset.protos import scenario_pb2

from motion_sim.data import example_reader, gpudrive_reader, scenario_reader
from motion_sim.data.datatypes import NUM_STEPS, AgentType, MapType, ScenarioError
from tests.fixtures import (
    EXAMPLE_FILE,
    GPUDRIVE_FILE,
    SCENARIO_FILE,
    SCENARIO_FILES,
    WOMD_SCENARIO_FILE,
)


def _first_record(path):
    return next(iter(tf.data.TFRecordDataset(path))).numpy()


def test_scenario_reader_matches_proto(womd_raw):
    proto = scenario_pb2.Scenario.FromString(_first_record(WOMD_SCENARIO_FILE))
    raw = womd_raw
    assert raw.scenario_id == "ee519cf571686d19"
    assert raw.source == f"{WOMD_SCENARIO_FILE}:0"
    assert raw.xyz.shape == (257, NUM_STEPS, 3) and raw.xyz.dtype == np.float64
    assert raw.sdc_index == 256
    assert raw.tracks_to_predict.tolist() == [18, 234, 229, 26]
    assert int(raw.valid[:, 10].sum()) == 84
    for i in (0, 100, 256):
        track = proto.tracks[i]
        state = track.states[10]
        assert raw.track_id[i] == track.id and raw.track_type[i] == track.object_type
        np.testing.assert_array_equal(
            raw.xyz[i, 10], [state.center_x, state.center_y, state.center_z]
        )
        assert raw.heading[i, 10] == state.heading
        np.testing.assert_array_equal(raw.velocity[i, 10], [state.velocity_x, state.velocity_y])
        np.testing.assert_array_equal(raw.size[i, 10], [state.length, state.width, state.height])
        assert raw.valid[i].tolist() == [s.valid for s in track.states]
    kinds = collections.Counter(m.WhichOneof("feature_data") for m in proto.map_features)
    types = collections.Counter(MapType(int(t)) for t, _ in raw.map_polylines)
    assert types[MapType.LANE_SURFACE_STREET] == kinds["lane"] == 114
    assert types[MapType.CROSSWALK] == kinds["crosswalk"]
    assert types[MapType.STOP_SIGN] == kinds["stop_sign"]
    assert types[MapType.SPEED_BUMP] == kinds["speed_bump"]
    assert (
        sum(
            types[t]
            for t in (MapType.ROAD_EDGE_BOUNDARY, MapType.ROAD_EDGE_MEDIAN, MapType.ROAD_EDGE_OTHER)
        )
        == kinds["road_edge"]
    )
    crosswalk = next(p for t, p in raw.map_polylines if t == MapType.CROSSWALK)
    np.testing.assert_array_equal(crosswalk[0], crosswalk[-1])  # polygons are closed


def test_scenario_reader_traffic_lights(womd_lights_raw):
    raw = womd_lights_raw
    assert raw.scenario_id == "637f20cafde22ff8"
    assert raw.tl_valid.shape[0] == NUM_STEPS and raw.tl_valid.sum(axis=1).tolist() == [12] * 91
    proto = scenario_pb2.Scenario.FromString(_first_record(SCENARIO_FILE))
    lane_state = proto.dynamic_map_states[10].lane_states[3]
    assert raw.tl_lane_id[10, 3] == lane_state.lane and raw.tl_state[10, 3] == lane_state.state
    assert raw.tl_xyz[10, 3, 0] == lane_state.stop_point.x


def test_example_reader_matches_features(example_raw):
    example = tf.train.Example.FromString(_first_record(EXAMPLE_FILE))
    feature = example.features.feature

    def values(key):
        f = feature[key]
        return np.array(getattr(f, f.WhichOneof("kind")).value)

    raw = example_raw
    assert raw.scenario_id == "a3bb37c25ce56418"
    assert raw.xyz.shape[1:] == (NUM_STEPS, 3)
    sdc_slot = int(np.flatnonzero(values("state/is_sdc"))[0])
    assert raw.track_id[raw.sdc_index] == int(values("state/id")[sdc_slot])
    assert len(raw.tracks_to_predict) == int(values("state/tracks_to_predict").sum()) == 8
    # past (0..9), current (10) and future (11..90) land on the right steps
    assert raw.xyz[0, 10, 0] == np.float32(values("state/current/x")[0])
    assert raw.xyz[0, 0, 1] == np.float32(values("state/past/y").reshape(128, 10)[0, 0])
    assert raw.xyz[0, 90, 0] == np.float32(values("state/future/x").reshape(128, 80)[0, 79])
    assert raw.heading[0, 11] == np.float32(values("state/future/bbox_yaw").reshape(128, 80)[0, 0])
    # roadgraph samples grouped into one polyline per id run, types mapped
    ids = values("roadgraph_samples/id")[values("roadgraph_samples/valid") > 0]
    assert len(raw.map_polylines) == len(np.unique(ids))
    assert sum(len(p) for _, p in raw.map_polylines) == len(ids)
    types = collections.Counter(MapType(int(t)) for t, _ in raw.map_polylines)
    assert types[MapType.LANE_SURFACE_STREET] > 50 and types[MapType.ROAD_EDGE_BOUNDARY] > 10
    # traffic-light slots are per step: step 0 (past) and step 10 (current) hold different ids
    current_ids = values("traffic_light_state/current/id")
    current_valid = values("traffic_light_state/current/valid") > 0
    assert raw.tl_lane_id[10][raw.tl_valid[10]].tolist() == current_ids[current_valid].tolist()
    assert raw.tl_state[10, 1] == values("traffic_light_state/current/state")[1]


def test_gpudrive_reader_matches_json(gpudrive_raw):
    with open(GPUDRIVE_FILE) as f:
        scenario = json.load(f)
    raw = gpudrive_raw
    assert raw.scenario_id == "1c365f15b70ebdbf"
    assert len(raw.track_id) == 25 and raw.sdc_index == 24
    assert raw.tracks_to_predict.tolist() == [7, 24]
    obj = scenario["objects"][3]
    assert raw.track_id[3] == int(obj["id"]) and raw.track_type[3] == AgentType.VEHICLE
    assert raw.xyz[3, 40, 1] == obj["position"][40]["y"]
    assert raw.velocity[3, 40, 0] == obj["velocity"][40]["x"]
    assert raw.heading[3, 40] == obj["heading"][40]
    assert raw.valid[3].tolist() == obj["valid"]
    np.testing.assert_array_equal(raw.size[3, 0], [obj["length"], obj["width"], obj["height"]])
    types = collections.Counter(MapType(int(t)) for t, _ in raw.map_polylines)
    assert types[MapType.DRIVEWAY] == 48 and types[MapType.STOP_SIGN] == 2
    assert types[MapType.LANE_BIKE] == 6 and types[MapType.LANE_UNDEFINED] == 5
    assert types[MapType.ROAD_EDGE_BOUNDARY] == 18 and types[MapType.SPEED_BUMP] == 3
    assert types[MapType.ROAD_LINE_DOUBLE] == 2  # code 12: solid double yellow
    assert set(types) <= set(MapType)


def test_gpudrive_reader_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScenarioError, match=r"bad\.json:0: not valid JSON") as e:
        gpudrive_reader.read_gpudrive_file(str(bad))
    assert e.value.reason == "bad_record"
    with open(GPUDRIVE_FILE) as f:
        scenario = json.load(f)
    scenario["objects"][2]["heading"] = scenario["objects"][2]["heading"][:50]
    with pytest.raises(ScenarioError, match=r"x\.json:0: object 1410 has 50 steps") as e:
        gpudrive_reader.read_gpudrive_scenario(scenario, "x.json:0")
    assert e.value.reason == "bad_length"


def test_readers_reject_wrong_record_type():
    # The tf.Example sample is framed correctly but is not a Scenario proto (or vice versa).
    with pytest.raises(ScenarioError) as e:
        raw = next(scenario_reader.read_scenario_files(EXAMPLE_FILE))
        del raw
    assert EXAMPLE_FILE in str(e.value) and e.value.reason in ("bad_record", "bad_length")
    with pytest.raises(ScenarioError, match="lacks feature") as e:
        next(example_reader.read_example_files(WOMD_SCENARIO_FILE))
    assert e.value.reason == "bad_record"


def test_no_matching_files():
    with pytest.raises(FileNotFoundError, match="no files match"):
        next(scenario_reader.read_scenario_files("/nonexistent/*.tfrecord"))


def test_bulk_decoder_matches_python_proto_path():
    """read_scenario_bytes (decode_proto) == read_scenario_proto (Python API), field by field."""
    from motion_sim.data.scenario_writer import to_scenario_proto
    from motion_sim.data.synthetic import SyntheticScenarioGenerator

    records = [_first_record(path) for path in SCENARIO_FILES]
    records.append(
        to_scenario_proto(
            SyntheticScenarioGenerator(num_agents=40, seed=3).generate(0)
        ).SerializeToString()
    )
    for serialized in records:
        slow = scenario_reader.read_scenario_proto(
            scenario_pb2.Scenario.FromString(serialized), "s:0"
        )
        fast = scenario_reader.read_scenario_bytes(serialized, "s:0")
        for name in slow._fields:
            if name != "map_polylines":
                np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), name)
        assert len(fast.map_polylines) == len(slow.map_polylines)
        for (type_a, pts_a), (type_b, pts_b) in zip(fast.map_polylines, slow.map_polylines):
            assert type_a == type_b
            np.testing.assert_array_equal(pts_a, pts_b)


def test_short_track_is_rejected_by_both_paths():
    proto = scenario_pb2.Scenario.FromString(_first_record(SCENARIO_FILE))
    del proto.tracks[5].states[40:]
    for read in (
        lambda: scenario_reader.read_scenario_proto(proto, "f:2"),
        lambda: scenario_reader.read_scenario_bytes(proto.SerializeToString(), "f:2"),
    ):
        with pytest.raises(
            ScenarioError, match=f"f:2: track {proto.tracks[5].id} has 40 states"
        ) as e:
            read()
        assert e.value.reason == "bad_length"


def test_gpudrive_traffic_lights():
    with open(GPUDRIVE_FILE) as f:
        scenario = json.load(f)
    scenario["tl_states"] = {
        "88": {
            "state": ["go", "caution", "stop"],
            "x": [1.0, 1.0, 1.0],
            "y": [2.0, 2.0, 2.0],
            "z": [0.5, 0.5, 0.5],
            "time_index": [9, 10, 11],
        },
        "77": {"state": ["arrow_stop"] * 2, "x": [5.0, 5.0], "y": [6.0, 6.0], "time_index": [0, 1]},
    }
    raw = gpudrive_reader.read_gpudrive_scenario(scenario, "g.json:0")
    assert raw.tl_valid.shape == (NUM_STEPS, 2)
    assert raw.tl_valid.sum(axis=0).tolist() == [2, 3]  # lanes sorted by id: "77", "88"
    assert raw.tl_state[10, 1] == 5 and raw.tl_state[11, 1] == 4 and raw.tl_state[0, 0] == 1
    assert raw.tl_lane_id[10, 1] == 88 and raw.tl_lane_id[10, 0] == -1
    np.testing.assert_array_equal(raw.tl_xyz[9, 1], [1.0, 2.0, 0.5])
