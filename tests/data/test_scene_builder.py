"""build_scene on real and synthetic scenarios: frame, agent selection, dropping, validation."""

import numpy as np
import pytest

from motion_sim.data import polyline
from motion_sim.data.datatypes import (
    CURRENT_INDEX,
    MAX_AGENTS,
    MAX_POLYLINES,
    MapType,
    ScenarioError,
    scene_spec,
)
from motion_sim.data.frames import to_scene, to_world
from motion_sim.data.scenario_reader import read_scenario_proto
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.scene_builder import build_scene
from motion_sim.data.synthetic import SyntheticScenarioGenerator


def _rows(raw, ids):
    return np.array([np.flatnonzero(raw.track_id == i)[0] for i in ids])


def test_shapes_and_dtypes_match_spec(all_raws):
    for raw in all_raws:
        scene, dropped = build_scene(raw)
        for name, (shape, dtype) in scene_spec().items():
            value = np.asarray(getattr(scene, name))
            assert value.shape == shape and value.dtype == dtype, (raw.source, name)
        assert dropped.dtype == np.int64 and len(dropped) == 0


def test_world_round_trip_on_real_scenes(all_raws):
    """Scene-frame float32 positions taken back to the world match the log to <= 1e-3 m."""
    for raw in all_raws:
        scene, _ = build_scene(raw)
        mask = scene.agent_mask
        rows = _rows(raw, scene.agent_id[mask])
        world_xy, world_heading = to_world(scene.agent_xy[mask], scene.agent_heading[mask], scene)
        valid = raw.valid[rows]
        err = np.linalg.norm(world_xy - raw.xyz[rows, :, :2], axis=-1)[valid]
        assert err.max() <= 1e-3, raw.source
        dyaw = (world_heading - raw.heading[rows] + np.pi) % (2 * np.pi) - np.pi
        assert np.abs(dyaw[valid]).max() < 1e-5
        # and the other direction, in float64, is exact
        back_xy, back_heading = to_scene(world_xy, world_heading, scene)
        np.testing.assert_allclose(back_xy, scene.agent_xy[mask], atol=1e-9)
        # map and traffic lights use the same frame
        map_rows = scene.map_valid.any(-1)
        assert map_rows.sum() > 100


def test_batched_frame_transform(all_raws):
    scenes = [build_scene(raw)[0] for raw in all_raws]
    batch = {
        "frame_origin": np.stack([s.frame_origin for s in scenes]),
        "frame_yaw": np.stack([s.frame_yaw for s in scenes]),
    }
    xy = np.stack([s.agent_xy for s in scenes])  # [B, A, S, 2]
    heading = np.stack([s.agent_heading for s in scenes])
    world_xy, _ = to_world(xy, heading, batch)
    for b, scene in enumerate(scenes):
        single, _ = to_world(scene.agent_xy, scene.agent_heading, scene)
        np.testing.assert_array_equal(world_xy[b], single)


def test_frame_and_agent_order(womd_raw):
    raw = womd_raw
    scene, _ = build_scene(raw)
    sdc = raw.sdc_index
    assert scene.agent_id[0] == raw.track_id[sdc] and scene.sdc_index == 0
    np.testing.assert_array_equal(scene.frame_origin, raw.xyz[sdc, CURRENT_INDEX])
    np.testing.assert_allclose(scene.agent_xy[0, CURRENT_INDEX], [0, 0], atol=1e-6)
    assert abs(scene.agent_heading[0, CURRENT_INDEX]) < 1e-6
    n = int(scene.agent_mask.sum())
    assert n == int(raw.valid[:, CURRENT_INDEX].sum()) == 84
    assert scene.agent_mask[:n].all() and not scene.agent_mask[n:].any()
    assert (scene.agent_id[n:] == -1).all()
    # tracks_to_predict right after the SDC, then by distance
    ttp_ids = [raw.track_id[r] for r in raw.tracks_to_predict if raw.valid[r, CURRENT_INDEX]]
    k = 1 + len(set(ttp_ids) - {raw.track_id[sdc]})
    assert set(scene.agent_id[1:k]) == set(ttp_ids) - {raw.track_id[sdc]}
    assert scene.tracks_to_predict[1:k].all() and not scene.tracks_to_predict[k:].any()
    dist = np.linalg.norm(scene.agent_xy[k:n, CURRENT_INDEX], axis=-1)
    assert (np.diff(dist) >= -1e-4).all()
    # invalid steps are zeroed
    assert (scene.agent_xy[~scene.agent_valid] == 0).all()
    # scene-frame velocity is the world velocity rotated by -frame_yaw
    rows = _rows(raw, scene.agent_id[:n])
    speed_world = np.linalg.norm(raw.velocity[rows, CURRENT_INDEX], axis=-1)
    np.testing.assert_allclose(
        np.linalg.norm(scene.agent_vel[:n, CURRENT_INDEX], axis=-1),
        speed_world,
        rtol=1e-5,
        atol=1e-5,
    )


def test_map_selection_and_spacing(womd_lights_raw):
    scene, _ = build_scene(womd_lights_raw)
    used = scene.map_valid.any(-1)
    assert used.all()  # this scene has more chunks than slots
    assert (scene.map_type[used] != MapType.PAD).all()
    # nearest chunks kept, nearest first
    dist = np.where(scene.map_valid, np.linalg.norm(scene.map_xy, axis=-1), np.inf).min(-1)
    assert (np.diff(dist) >= -1e-4).all()
    _, _, _, num_chunks = polyline.select_map(
        [(t, p[:, :2] - scene.frame_origin[:2]) for t, p in womd_lights_raw.map_polylines]
    )
    assert num_chunks > MAX_POLYLINES
    spacing = np.linalg.norm(np.diff(scene.map_xy, axis=1), axis=-1)
    full = scene.map_valid.all(-1)
    assert spacing[full].max() <= polyline.MAX_POINT_SPACING_M + 1e-4
    # traffic lights: 12 per step, in the scene frame
    assert scene.tl_valid.sum(axis=1).tolist() == [12] * 91
    assert np.abs(scene.tl_xy[scene.tl_valid]).max() < 200


def test_chunk_polyline():
    line = np.stack([np.linspace(0, 100, 11), np.zeros(11)], -1)
    line = np.concatenate([line[:3], line[2:3], line[3:]])  # a repeated point
    xy, valid = polyline.chunk_polyline(line)
    assert xy.shape == (3, 20, 2) and valid.all()  # 100 m / 38 m -> 3 equal chunks
    np.testing.assert_allclose(xy[0, 0], [0, 0])
    np.testing.assert_allclose(xy[-1, -1], [100, 0])
    np.testing.assert_allclose(xy[0, -1], xy[1, 0])  # chunks share end points
    np.testing.assert_allclose(np.diff(xy[..., 0], axis=1), 100 / 3 / 19)
    point, point_valid = polyline.chunk_polyline(np.array([[3.0, 4.0]]))
    assert point_valid.sum() == 1 and (point[0, 0] == [3, 4]).all()


def test_more_than_max_agents_drops_farthest_keeps_sdc_and_ttp():
    raw = SyntheticScenarioGenerator(num_agents=220, seed=7).generate(0)
    current = raw.valid[:, CURRENT_INDEX]
    assert current.sum() > MAX_AGENTS
    # make a far-away agent a track to predict: it must survive the cut
    d = np.linalg.norm(
        raw.xyz[:, CURRENT_INDEX, :2] - raw.xyz[raw.sdc_index, CURRENT_INDEX, :2], axis=-1
    )
    farthest = int(np.argmax(np.where(current, d, -1)))
    raw = raw._replace(tracks_to_predict=np.r_[raw.tracks_to_predict, farthest].astype(np.int32))
    scene, dropped = build_scene(raw)
    assert scene.agent_mask.all()
    assert scene.num_agents_dropped == current.sum() - MAX_AGENTS == len(dropped)
    assert scene.agent_id[0] == raw.track_id[raw.sdc_index]
    ttp_ids = set(raw.track_id[raw.tracks_to_predict])
    assert ttp_ids <= set(scene.agent_id)
    assert raw.track_id[farthest] in scene.agent_id
    assert not set(dropped) & set(scene.agent_id)
    assert set(dropped) | set(scene.agent_id) == set(raw.track_id[current])
    others = [i for i in scene.agent_id if i not in ttp_ids]
    kept_d = d[_rows(raw, others)].max()
    assert d[_rows(raw, dropped)].min() >= kept_d  # the farthest were dropped


def _proto_round_trip(raw, source="bad.tfrecord:3"):
    """Writes raw as a Scenario proto and reads it back, as preprocess would."""
    return read_scenario_proto(to_scenario_proto(raw), source)


@pytest.fixture(scope="module")
def small_raw():
    return SyntheticScenarioGenerator(num_agents=12, seed=1).generate(0)


def test_no_valid_agent_at_current_step(small_raw):
    valid = small_raw.valid.copy()
    valid[:, CURRENT_INDEX] = False
    with pytest.raises(ScenarioError, match=r"^bad\.tfrecord:3: .*no track is valid") as e:
        build_scene(_proto_round_trip(small_raw._replace(valid=valid)))
    assert e.value.reason == "no_valid_agents" and e.value.source == "bad.tfrecord:3"


def test_sdc_invalid_at_current_step(small_raw):
    valid = small_raw.valid.copy()
    valid[small_raw.sdc_index, CURRENT_INDEX] = False
    with pytest.raises(ScenarioError, match="SDC .* invalid at the current step") as e:
        build_scene(small_raw._replace(valid=valid))
    assert e.value.reason == "sdc_invalid"


def test_nan_state_in_valid_step(small_raw):
    xyz = small_raw.xyz.copy()
    valid = small_raw.valid.copy()
    row = 3
    valid[row, 40] = True
    xyz[row, 40, 0] = np.nan
    with pytest.raises(
        ScenarioError, match=f"non-finite xyz for track {small_raw.track_id[row]} at valid step 40"
    ) as e:
        build_scene(_proto_round_trip(small_raw._replace(xyz=xyz, valid=valid)))
    assert e.value.reason == "non_finite_state"
    # the same NaN at an invalid step is harmless
    valid[row, 40] = False
    scene, _ = build_scene(small_raw._replace(xyz=xyz, valid=valid))
    assert np.isfinite(scene.agent_xy).all()
    heading = small_raw.heading.copy()
    heading[small_raw.sdc_index, 5] = np.inf
    with pytest.raises(ScenarioError, match="non-finite heading"):
        build_scene(small_raw._replace(heading=heading))


def test_no_map_features(small_raw):
    with pytest.raises(ScenarioError, match="no map features") as e:
        build_scene(_proto_round_trip(small_raw._replace(map_polylines=[])))
    assert e.value.reason == "no_map"


def test_vectorised_chunking_matches_reference(womd_raw):
    polylines = [(t, p[:, :2]) for t, p in womd_raw.map_polylines]
    polylines += [
        (MapType.STOP_SIGN, np.array([[1.0, 2.0]])),
        (MapType.ROAD_LINE_SOLID, np.array([[1.0, 2.0], [1.0, 2.0]])),
    ]
    xy, valid, types = polyline._chunk_all(polylines)
    reference = [polyline.chunk_polyline(p) for _, p in polylines]
    ref_valid = np.concatenate([v for _, v in reference])
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_allclose(
        np.where(valid[..., None], xy, 0), np.concatenate([x for x, _ in reference]), atol=1e-6
    )
    assert types.tolist() == [
        int(t) for (t, _), (x, _) in zip(polylines, reference) for _ in range(len(x))
    ]


def test_rows_out_of_range(small_raw):
    with pytest.raises(ScenarioError, match="outside") as e:
        build_scene(small_raw._replace(tracks_to_predict=np.array([0, 99], np.int32)))
    assert e.value.reason == "bad_record"
