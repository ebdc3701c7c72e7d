"""Synthetic generator: seeded, > MAX_AGENTS, plausible kinematics, valid Scenario protos."""

import numpy as np

from motion_sim.data.datatypes import CURRENT_INDEX, MAX_AGENTS, AgentType, MapType
from motion_sim.data.scenario_reader import read_scenario_proto
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.synthetic import SyntheticScenarioGenerator


def test_seeded_and_scaled():
    gen = SyntheticScenarioGenerator(num_agents=200, seed=4)
    a, b = gen.generate(3), gen.generate(3)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    assert not np.array_equal(a.xyz, gen.generate(4).xyz)
    assert a.xyz.shape[0] == 200 and a.valid[:, CURRENT_INDEX].sum() > MAX_AGENTS
    assert a.valid[a.sdc_index].all() and a.sdc_index in a.tracks_to_predict
    types = set(a.track_type.tolist())
    assert {AgentType.VEHICLE, AgentType.PEDESTRIAN, AgentType.CYCLIST} <= types
    # agents appear late / leave early
    first_valid = a.valid.argmax(axis=1)
    assert (first_valid > 0).any() and (~a.valid[:, -1]).any()
    map_types = {int(t) for t, _ in a.map_polylines}
    assert {
        MapType.LANE_SURFACE_STREET,
        MapType.ROAD_LINE_BROKEN,
        MapType.ROAD_EDGE_BOUNDARY,
        MapType.CROSSWALK,
        MapType.STOP_SIGN,
    } <= map_types
    span = np.ptp(np.concatenate([p[:, 0] for _, p in a.map_polylines]))
    assert span >= 700  # a long map: more polyline than 256 chunks cover


def test_plausible_kinematics():
    raw = SyntheticScenarioGenerator(num_agents=150, seed=9).generate(0)
    both = raw.valid[:, 1:] & raw.valid[:, :-1]
    step = np.linalg.norm(np.diff(raw.xyz[..., :2], axis=1), axis=-1)
    speed = step / 0.1
    assert speed[both].max() < 25.0
    veh = raw.track_type == AgentType.VEHICLE
    accel = np.abs(np.diff(speed, axis=1))[(both[:, 1:] & both[:, :-1]) & veh[:, None]] / 0.1
    assert np.percentile(accel, 99) < 6.0  # IDM keeps accelerations comfortable
    ped = raw.track_type == AgentType.PEDESTRIAN
    assert speed[ped][both[ped]].max() < 2.5
    # heading follows the direction of travel for moving vehicles
    moving = both & (speed > 2.0) & veh[:, None]
    motion_yaw = np.arctan2(*np.diff(raw.xyz[..., :2], axis=1)[..., ::-1].transpose(2, 0, 1))
    dyaw = (motion_yaw - raw.heading[:, 1:] + np.pi) % (2 * np.pi) - np.pi
    assert np.percentile(np.abs(dyaw[moving]), 95) < 0.1


def test_scenario_proto_round_trip():
    raw = SyntheticScenarioGenerator(num_agents=30, seed=2).generate(1)
    back = read_scenario_proto(to_scenario_proto(raw), "synthetic.tfrecord:0")
    np.testing.assert_array_equal(back.xyz, raw.xyz)
    np.testing.assert_array_equal(back.valid, raw.valid)
    assert back.tracks_to_predict.tolist() == raw.tracks_to_predict.tolist()
    assert [int(t) for t, _ in back.map_polylines] == [int(t) for t, _ in raw.map_polylines]
    np.testing.assert_array_equal(back.tl_state, raw.tl_state)


def test_write_tfrecord_reads_back(tmp_path):
    from motion_sim.data.scenario_reader import read_scenario_files

    gen = SyntheticScenarioGenerator(num_agents=20, seed=6)
    path = str(tmp_path / "synthetic.tfrecord")
    gen.write_tfrecord(path, num_scenarios=2, start=5)
    raws = list(read_scenario_files(path))
    assert [r.scenario_id for r in raws] == ["synthetic-6-5", "synthetic-6-6"]
    np.testing.assert_array_equal(raws[1].xyz, gen.generate(6).xyz)
    assert raws[0].source == f"{path}:0"
