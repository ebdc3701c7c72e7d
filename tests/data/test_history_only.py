"""History-only (WOMD test split) scenes: 11 steps, no logged future.

The real test-split Scenario proto fcb5b4973f486e78 (12 tracks, 10 sim agents) and the same
scene in GPUDrive JSON read, preprocess (counted, flagged in the shards) and are skipped by the
training pipeline; training on nothing else is a one-line error naming the scene.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from waymo_open_dataset.protos import scenario_pb2

from motion_sim.data import (
    example_reader,
    gpudrive_reader,
    pipeline,
    preprocess,
    scenario_reader,
)
from motion_sim.data.datatypes import CURRENT_INDEX, NUM_STEPS
from motion_sim.data.scene_builder import build_scene
from motion_sim.data.scene_codec import parse_history_only
from tests.fixtures import EXAMPLE_FILE, REPO, SAMPLE_DIR, SCENARIO_FILES

TEST_SPLIT = os.path.join(SAMPLE_DIR, "test_split_fcb5b4973f486e78.tfrecord")
TEST_SPLIT_JSON = os.path.join(
    REPO, "tests", "testdata", "gpudrive", "tfrecord-00000-of-00150_78.json.gz"
)


def _record(path):
    return next(iter(tf.data.TFRecordDataset(path))).numpy()


def _check_history_only(raw):
    assert raw.history_only and raw.scenario_id == "fcb5b4973f486e78"
    assert raw.valid.shape == (12, NUM_STEPS)
    assert not raw.valid[:, CURRENT_INDEX + 1 :].any()
    assert int(raw.valid[:, CURRENT_INDEX].sum()) == 10
    scene, dropped = build_scene(raw)
    assert int(scene.agent_mask.sum()) == 10 and len(dropped) == 0


def test_scenario_proto_both_paths():
    serialized = _record(TEST_SPLIT)
    proto = scenario_pb2.Scenario.FromString(serialized)
    assert len(proto.timestamps_seconds) == 11 and len(proto.tracks[0].states) == 11
    fast = scenario_reader.read_scenario_bytes(serialized, "t:0")
    slow = scenario_reader.read_scenario_proto(proto, "t:0")
    _check_history_only(fast)
    for name in fast._fields:
        if name != "map_polylines":
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), name)
    # states land on steps 0..10 exactly
    state = proto.tracks[3].states[CURRENT_INDEX]
    assert fast.xyz[3, CURRENT_INDEX, 0] == state.center_x and fast.valid[3, CURRENT_INDEX]
    assert not scenario_reader.read_scenario_bytes(_record(SCENARIO_FILES[0]), "s:0").history_only


def test_gpudrive_test_split_file_is_the_same_scene():
    from_json = gpudrive_reader.read_gpudrive_file(TEST_SPLIT_JSON)
    from_proto = scenario_reader.read_scenario_bytes(_record(TEST_SPLIT), "t:0")
    _check_history_only(from_json)
    assert from_json.track_id.tolist() == from_proto.track_id.tolist()
    assert from_json.sdc_index == from_proto.sdc_index and not from_json.sdc_inferred
    assert from_json.tracks_to_predict.tolist() == from_proto.tracks_to_predict.tolist()
    valid = from_proto.valid
    np.testing.assert_array_equal(from_json.valid, valid)
    np.testing.assert_allclose(from_json.xyz[valid][:, :2], from_proto.xyz[valid][:, :2], atol=1e-3)


def test_tf_example_without_future():
    example = tf.train.Example.FromString(_record(EXAMPLE_FILE))
    assert not example_reader.read_motion_example(example, "e:0").history_only
    # future fields present but nothing valid (how fixed-size test-split examples look) ...
    padded = tf.train.Example()
    padded.CopyFrom(example)
    valid = padded.features.feature["state/future/valid"].int64_list.value
    valid[:] = [0] * len(valid)
    raw = example_reader.read_motion_example(padded, "e:0")
    assert raw.history_only and not raw.valid[:, CURRENT_INDEX + 1 :].any()
    # ... or no future fields at all
    for key in [k for k in example.features.feature if "/future/" in k]:
        del example.features.feature[key]
    raw = example_reader.read_motion_example(example, "e:0")
    assert raw.history_only and not raw.valid[:, CURRENT_INDEX + 1 :].any()
    assert raw.valid[:, : CURRENT_INDEX + 1].any()
    build_scene(raw)


@pytest.fixture(scope="module")
def mixed_shards(tmp_path_factory):
    """The test-split proto and the two full sample protos, preprocessed to one directory."""
    out = str(tmp_path_factory.mktemp("mixed"))
    stats = preprocess.run(",".join([TEST_SPLIT, *SCENARIO_FILES]), out, "scenario")
    return out, stats


def test_preprocess_keeps_and_counts_them(mixed_shards):
    out, stats = mixed_shards
    assert stats["scenarios_written"] == 3 and stats["history_only"] == 1
    flags = {}
    for path in tf.io.gfile.glob(os.path.join(out, "*.tfrecord.gz")):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            flags[os.path.basename(path).split("-")[0]] = bool(parse_history_only(record))
    assert flags == {
        "test_split_fcb5b4973f486e78": True,
        "womd_scenario_input": False,
        "motion_data_one_scenario": False,
    }
    with open(os.path.join(out, "stats.json")) as f:
        assert json.load(f)["history_only"] == 1


def test_training_pipeline_skips_them(mixed_shards):
    out, _ = mixed_shards
    pattern = os.path.join(out, "*.tfrecord.gz")
    ids = [
        s["scenario_id"].numpy()[0].decode()
        for s in pipeline.make_dataset(pattern, 1, shuffle=False, repeat=False)
    ]
    assert sorted(ids) == ["637f20cafde22ff8", "ee519cf571686d19"]
    kept = [
        s["scenario_id"].numpy()[0].decode()
        for s in pipeline.make_dataset(
            pattern, 1, shuffle=False, repeat=False, require_future=False
        )
    ]
    assert "fcb5b4973f486e78" in kept and len(kept) == 3
    assert pipeline.history_only_count(pattern) == (1, 3)


def test_training_on_history_only_is_a_one_line_error(tmp_path):
    data = str(tmp_path / "data")
    preprocess.run(TEST_SPLIT, data, "scenario")
    with pytest.raises(ValueError, match="no scene with a logged future.*fcb5b4973f486e78"):
        pipeline.make_dataset(os.path.join(data, "*.tfrecord.gz"), 1)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.train",
            f"--root_dir={tmp_path / 'run'}",
            "--gin_file=gin/demo_pretrain.gin",
            f"--gin_bindings=DEMO_DATA='{data}/*.tfrecord.gz'",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("motion_sim.train: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "no scene with a logged future" in errors[0] and "'fcb5b4973f486e78'" in errors[0]
    assert lines[-1] == errors[0] and "In call to configurable" not in result.stderr


def test_written_back_as_the_test_split_ships_it():
    from motion_sim.data.scenario_writer import to_scenario_proto

    raw = gpudrive_reader.read_gpudrive_file(TEST_SPLIT_JSON)
    proto = to_scenario_proto(raw)
    assert len(proto.timestamps_seconds) == 11 and len(proto.tracks[0].states) == 11
    again = scenario_reader.read_scenario_bytes(proto.SerializeToString(), "w:0")
    assert again.history_only
    np.testing.assert_array_equal(again.valid, raw.valid)
    np.testing.assert_array_equal(again.xyz[raw.valid], raw.xyz[raw.valid])
