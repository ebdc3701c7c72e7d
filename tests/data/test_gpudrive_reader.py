"""Every published GPUDrive/Nocturne JSON layout, on the 15 real scenes bundled in
tests/testdata/gpudrive/ (see make_fixtures.py there): each reads with the documented defaults,
builds a scene, tokenises back to the log within 0.2 m mean (91-step scenes), and preprocesses
through the CLI."""

import copy
import glob
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from motion_sim.data import frames, gpudrive_reader, scene_builder
from motion_sim.data.datatypes import CURRENT_INDEX, NUM_STEPS, AgentType, ScenarioError
from motion_sim.tokenizer import ActionTokenizer

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "..", "testdata", "gpudrive")
REPO = os.path.join(os.path.dirname(__file__), "..", "..")
_OLD = ("heading_degrees", "object_id_from_row")
_NOCTURNE = (
    "heading_degrees",
    "height_by_type",
    "object_id_from_row",
    "road_id_from_row",
    "scenario_id_from_file_name",
)
# file, scenario_id, objects, SDC row, SDC inferred, history only, defaults, tracks_to_predict,
# traffic-light lanes -- what the reader must produce for each real file.
EXPECTED = [
    ("scenario_1c365f15b70ebdbf", "1c365f15b70ebdbf", 25, 24, False, False, (), 2, 0),
    ("tfrecord-00000-of-00150_6d2a107f2e8390a", "6d2a107f2e8390a", 18, 17, True, False, _OLD, 0, 0),
    ("tfrecord-00000-of-00150_78", "fcb5b4973f486e78", 12, 11, False, True, (), 3, 0),
    (
        "tfrecord-00000-of-00150_b065dcb23730589b",
        "b065dcb23730589b",
        49,
        48,
        True,
        False,
        _OLD,
        0,
        0,
    ),
    ("tfrecord-00001-of-00150_b5f53fa2db40a6b4", "b5f53fa2db40a6b4", 8, 1, True, False, _OLD, 0, 0),
    (
        "tfrecord-00001-of-00150_c9bbd79edc48bbcb",
        "c9bbd79edc48bbcb",
        56,
        55,
        True,
        False,
        _OLD,
        0,
        14,
    ),
    (
        "tfrecord-00001-of-01000_307",
        "tfrecord-00001-of-01000_307",
        21,
        1,
        True,
        False,
        _NOCTURNE,
        0,
        0,
    ),
    (
        "tfrecord-00002-of-00150_9c52d259d258d6a3",
        "9c52d259d258d6a3",
        34,
        33,
        True,
        False,
        _OLD,
        0,
        7,
    ),
    (
        "tfrecord-00003-of-01000_109",
        "tfrecord-00003-of-01000_109",
        34,
        12,
        True,
        False,
        _NOCTURNE,
        0,
        0,
    ),
    ("tfrecord-00004-of-00150_74e892ddfe3b9b8", "74e892ddfe3b9b8", 7, 1, True, False, _OLD, 0, 0),
    ("tfrecord-00005-of-00150_2bd577a009790706", "2bd577a009790706", 65, 7, True, False, (), 0, 9),
    (
        "tfrecord-00005-of-00150_a87cb50c40761580",
        "a87cb50c40761580",
        27,
        4,
        True,
        False,
        _OLD,
        0,
        7,
    ),
    (
        "tfrecord-00005-of-00150_efc5cbe01b4a526f",
        "efc5cbe01b4a526f",
        62,
        61,
        True,
        False,
        _OLD,
        0,
        0,
    ),
    (
        "tfrecord-00007-of-00150_d1c413df5470bfe6",
        "d1c413df5470bfe6",
        38,
        34,
        True,
        False,
        _OLD,
        0,
        12,
    ),
    (
        "tfrecord-00012-of-01000_389",
        "tfrecord-00012-of-01000_389",
        32,
        16,
        True,
        False,
        _NOCTURNE,
        0,
        0,
    ),
]


def _path(name):
    return os.path.join(FIXTURE_DIR, name + ".json.gz")


def _load(name):
    with open(_path(name), "rb") as f:
        return json.loads(gzip.decompress(f.read()))


def test_every_fixture_is_listed():
    names = sorted(
        os.path.basename(p)[: -len(".json.gz")]
        for p in glob.glob(os.path.join(FIXTURE_DIR, "*.json.gz"))
    )
    assert names == sorted(e[0] for e in EXPECTED) and len(names) == 15


@pytest.mark.parametrize(
    "name, scenario_id, num_objects, sdc, inferred, history_only, defaults, num_ttp, num_lights",
    EXPECTED,
    ids=[e[0] for e in EXPECTED],
)
def test_reads_every_version(
    name, scenario_id, num_objects, sdc, inferred, history_only, defaults, num_ttp, num_lights
):
    raw = gpudrive_reader.read_gpudrive_file(_path(name))
    scenario = _load(name)
    assert raw.scenario_id == scenario_id
    assert raw.source == _path(name) + ":0"
    assert len(raw.track_id) == num_objects and raw.xyz.shape == (num_objects, NUM_STEPS, 3)
    assert (raw.sdc_index, raw.sdc_inferred, raw.history_only) == (sdc, inferred, history_only)
    assert raw.defaults_applied == tuple(sorted(defaults))
    assert len(raw.tracks_to_predict) == num_ttp and raw.tl_valid.shape[1] == num_lights
    assert raw.valid[raw.sdc_index, CURRENT_INDEX]
    if inferred:  # the stated rule: the valid vehicle nearest the road points' bbox centre
        assert raw.track_type[raw.sdc_index] == AgentType.VEHICLE
        points = np.concatenate([p[:, :2] for _, p in raw.map_polylines])
        centre = (points.min(0) + points.max(0)) / 2
        rows = np.flatnonzero(raw.valid[:, CURRENT_INDEX] & (raw.track_type == AgentType.VEHICLE))
        d = np.linalg.norm(raw.xyz[rows, CURRENT_INDEX, :2] - centre, axis=-1)
        assert rows[np.argmin(d)] == raw.sdc_index
    # ids: the file's, else the row index
    objects = scenario["objects"]
    expected_ids = [int(o["id"]) if "id" in o else i for i, o in enumerate(objects)]
    assert raw.track_id.tolist() == expected_ids
    # heights: the file's, else the per-type default
    for i in (0, num_objects - 1):
        height = objects[i].get(
            "height", gpudrive_reader.DEFAULT_HEIGHT_M[AgentType(raw.track_type[i])]
        )
        np.testing.assert_allclose(
            raw.size[i, 0], [objects[i]["length"], objects[i]["width"], height]
        )
    # headings end up in radians in every version: they agree with the direction of motion
    speed = np.linalg.norm(raw.velocity, axis=-1)
    moving = raw.valid & (speed > 3.0)
    direction = np.arctan2(raw.velocity[..., 1], raw.velocity[..., 0])
    off = np.abs(frames.wrap_angle(raw.heading - direction))[moving]
    assert np.median(off) < 0.05, np.median(off)
    # history-only scenes are padded to 91 steps with nothing valid after the current step
    steps = len(objects[0]["position"])
    assert steps == (11 if history_only else NUM_STEPS)
    assert raw.valid[:, steps:].sum() == 0
    assert raw.valid[:, :steps].tolist() == [o["valid"] for o in objects]


@pytest.mark.parametrize("name", [e[0] for e in EXPECTED if not e[5]])
def test_tokenises_full_scenes_within_bound(name):
    """Each 91-step scene: tokenised log decoded back to 10 Hz is <= 0.2 m off on average."""
    scene, _ = scene_builder.build_scene(gpudrive_reader.read_gpudrive_file(_path(name)))
    err, mask = ActionTokenizer(token_hz=2).reconstruction_error(
        scene.agent_xy, scene.agent_valid & scene.agent_mask[:, None], scene.agent_vel
    )
    e = err.numpy()[mask.numpy()]
    assert e.size > 200, e.size
    assert e.mean() <= 0.2, e.mean()
    assert e.max() < 2.0, e.max()


def test_history_only_scene_builds():
    raw = gpudrive_reader.read_gpudrive_file(_path("tfrecord-00000-of-00150_78"))
    scene, dropped = scene_builder.build_scene(raw)
    assert int(scene.agent_mask.sum()) == 10 and len(dropped) == 0
    assert not scene.agent_valid[:, CURRENT_INDEX + 1 :].any()
    assert scene.agent_valid[:10, CURRENT_INDEX].all()


def test_default_rules_on_edited_real_scene():
    scenario = _load("scenario_1c365f15b70ebdbf")
    objects = scenario["objects"]
    # SDC: metadata absent -> the object GPUDrive marks with is_sdc ...
    marked = copy.deepcopy(scenario)
    del marked["metadata"]
    marked["objects"][3]["is_sdc"] = True
    raw = gpudrive_reader.read_gpudrive_scenario(marked, "m.json:0")
    assert raw.sdc_index == 3 and raw.sdc_inferred and len(raw.tracks_to_predict) == 0
    # ... and an out-of-range metadata index is not trusted either
    bad_index = copy.deepcopy(scenario)
    bad_index["metadata"]["sdc_track_index"] = len(objects)
    assert gpudrive_reader.read_gpudrive_scenario(bad_index, "b.json:0").sdc_inferred
    # empty tracks_to_predict
    empty = copy.deepcopy(scenario)
    empty["metadata"]["tracks_to_predict"] = []
    raw = gpudrive_reader.read_gpudrive_scenario(empty, "e.json:0")
    assert raw.tracks_to_predict.shape == (0,) and raw.sdc_index == 24
    scene, _ = scene_builder.build_scene(raw)
    assert scene.tracks_to_predict.sum() == 0 and scene.agent_mask.sum() == 16
    # no scenario_id, no name: the file name given
    anonymous = copy.deepcopy(scenario)
    del anonymous["scenario_id"], anonymous["name"]
    raw = gpudrive_reader.read_gpudrive_scenario(anonymous, "a.json:0", "my_scene.json")
    assert raw.scenario_id == "my_scene" and "scenario_id_from_file_name" in raw.defaults_applied


def test_needed_fields_are_clear_errors():
    scenario = _load("tfrecord-00001-of-01000_307")  # Nocturne era: no ids
    no_position = copy.deepcopy(scenario)
    del no_position["objects"][4]["position"]
    with pytest.raises(ScenarioError, match=r"^n\.json:0: object 4 lacks field 'position'$") as e:
        gpudrive_reader.read_gpudrive_scenario(no_position, "n.json:0")
    assert e.value.reason == "bad_record"
    no_width = copy.deepcopy(scenario)
    del no_width["objects"][2]["width"]
    with pytest.raises(ScenarioError, match=r"n\.json:0: object 2 lacks field 'width'"):
        gpudrive_reader.read_gpudrive_scenario(no_width, "n.json:0")
    short = copy.deepcopy(scenario)
    for obj in short["objects"]:
        obj["position"] = obj["position"][:40]
    with pytest.raises(
        ScenarioError,
        match=r"object 0 has 40 steps, expected 91 \(or 11 for a "
        r"history-only test-split scene\)",
    ) as e:
        gpudrive_reader.read_gpudrive_scenario(short, "n.json:0")
    assert e.value.reason == "bad_length"
    nothing_valid = copy.deepcopy(scenario)
    for obj in nothing_valid["objects"]:
        obj["valid"] = [False] * NUM_STEPS
    with pytest.raises(
        ScenarioError,
        match="no SDC: metadata.sdc_track_index is None and no "
        "object is valid at the current step 10",
    ):
        gpudrive_reader.read_gpudrive_scenario(nothing_valid, "n.json:0")


def test_both_traffic_light_layouts_agree():
    """The dict-by-lane layout of a real file and the same lights as a list of dicts."""
    name = "tfrecord-00001-of-00150_c9bbd79edc48bbcb"  # 14 lanes, 46-67 observed steps each
    scenario = _load(name)
    as_dict = gpudrive_reader.read_gpudrive_scenario(scenario, "d.json:0")
    by_lane = sorted(scenario["tl_states"].items(), key=lambda kv: int(kv[0]))
    assert as_dict.tl_valid.sum(axis=0).tolist() == [len(v["state"]) for _, v in by_lane]
    first_seen = [v["time_index"][0] for _, v in by_lane]  # lanes starting at 0, 5 and 9
    assert as_dict.tl_valid.argmax(axis=0).tolist() == first_seen
    listed = copy.deepcopy(scenario)
    listed["tl_states"] = [
        dict(light, lane_id=[int(lane)] * len(light["state"])) for lane, light in by_lane
    ]
    as_list = gpudrive_reader.read_gpudrive_scenario(listed, "l.json:0")
    for field in ("tl_lane_id", "tl_state", "tl_xyz", "tl_valid"):
        np.testing.assert_array_equal(getattr(as_list, field), getattr(as_dict, field), field)
    assert as_dict.tl_lane_id[0, 0] == int(by_lane[0][0])
    assert as_dict.tl_state[CURRENT_INDEX, 0] == 6  # "go"
    scene, _ = scene_builder.build_scene(as_dict)
    assert scene.tl_valid[CURRENT_INDEX].sum() == as_dict.tl_valid[CURRENT_INDEX].sum() == 14


def test_preprocess_cli_on_every_version(tmp_path):
    """python -m motion_sim.data.preprocess --format=gpudrive over all 15 real files."""
    out = tmp_path / "scenes"
    env = dict(os.environ, PYTHONPATH=os.path.abspath(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.data.preprocess",
            "--format=gpudrive",
            f"--input={FIXTURE_DIR}/*.json.gz",
            f"--output_dir={out}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(out / "stats.json") as f:
        stats = json.load(f)
    assert stats["scenarios_read"] == stats["scenarios_written"] == 15, stats["skipped_examples"]
    assert stats["skipped"] == {}
    assert stats["history_only"] == 1 and stats["sdc_inferred"] == 13
    assert stats["defaults_applied"] == {
        "heading_degrees": 12,
        "object_id_from_row": 12,
        "height_by_type": 3,
        "road_id_from_row": 3,
        "scenario_id_from_file_name": 3,
    }
    assert stats["token_reconstruction_error_m"]["mean"] <= 0.2
    assert json.loads(result.stdout.strip().splitlines()[-1])["history_only"] == 1
