"""preprocess CLI end to end: bundled samples, resume, stats.json, bad inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from motion_sim.data import preprocess, shard_writer
from motion_sim.data.datatypes import CURRENT_INDEX
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.scene_codec import decode_scene
from motion_sim.data.synthetic import SyntheticScenarioGenerator
from tests.fixtures import EXAMPLE_FILE, GPUDRIVE_FILE, SAMPLE_DIR

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STATS_KEYS = {
    "scenarios_read",
    "scenarios_written",
    "skipped",
    "agents_kept",
    "agents_dropped",
    "token_reconstruction_error_m",
}


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "motion_sim.data.preprocess", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _read_scenes(output_dir):
    scenes = []
    for path in sorted(tf.io.gfile.glob(os.path.join(output_dir, "*.tfrecord.gz"))):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            scenes.append(decode_scene(record.numpy()))
    return scenes


def _end_to_end_and_resume(tmp_path, num_workers):
    out = str(tmp_path / "scenes")
    pattern = os.path.join(SAMPLE_DIR, "*scenario*.tfrecord")
    first = _cli(
        f"--input={pattern}",
        f"--output_dir={out}",
        "--format=scenario",
        f"--num_workers={num_workers}",
        "--shard_size=1",
    )
    assert first.returncode == 0, first.stderr
    assert "preprocess: 100%" in first.stderr and "scenarios=2" in first.stderr  # tqdm bar
    with open(os.path.join(out, "stats.json")) as f:
        stats = json.load(f)
    assert STATS_KEYS <= set(stats)
    assert stats["scenarios_read"] == stats["scenarios_written"] == 2
    assert stats["skipped"] == {} and stats["agents_dropped"] == 0
    assert stats["agents_kept"] == 84 + 50
    err = stats["token_reconstruction_error_m"]
    assert 0 < err["mean"] < 0.5 and err["mean"] <= err["max"] < 5.0
    assert stats["units_processed"] == 2 and stats["units_skipped_as_done"] == 0
    shards = sorted(f for f in os.listdir(out) if f.endswith(".tfrecord.gz"))
    assert len(shards) == 2 and not [f for f in os.listdir(out) if ".tmp-" in f]
    ids = sorted(s.scenario_id.item() for s, _ in _read_scenes(out))
    assert ids == ["637f20cafde22ff8", "ee519cf571686d19"]
    mtimes = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in shards}

    second = _cli(f"--input={pattern}", f"--output_dir={out}", "--format=scenario")
    assert second.returncode == 0, second.stderr
    with open(os.path.join(out, "stats.json")) as f:
        resumed = json.load(f)
    assert resumed["units_processed"] == 0 and resumed["units_skipped_as_done"] == 2
    assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in shards} == mtimes
    assert {k: resumed[k] for k in STATS_KEYS} == {k: stats[k] for k in STATS_KEYS}


def test_cli_end_to_end_and_resume(tmp_path):
    _end_to_end_and_resume(tmp_path, num_workers=1)


@pytest.mark.slow
def test_cli_end_to_end_spawned_workers(tmp_path):
    # Same run through the spawn pool (each worker imports TensorFlow: ~10-40 s on a busy box).
    _end_to_end_and_resume(tmp_path, num_workers=2)


def test_cli_unknown_format(tmp_path):
    result = _cli(f"--input={EXAMPLE_FILE}", f"--output_dir={tmp_path}", "--format=nuscenes")
    assert result.returncode != 0
    assert "--format" in result.stderr and "scenario|example|gpudrive" in result.stderr
    with pytest.raises(ValueError, match="unknown --format 'nuscenes'"):
        preprocess.run(EXAMPLE_FILE, str(tmp_path), "nuscenes")


@pytest.mark.parametrize(
    "fmt,path,scenario_id",
    [
        ("example", EXAMPLE_FILE, "a3bb37c25ce56418"),
        ("gpudrive", GPUDRIVE_FILE, "1c365f15b70ebdbf"),
    ],
)
def test_other_formats(tmp_path, fmt, path, scenario_id):
    stats = preprocess.run(path, str(tmp_path), fmt)
    assert stats["scenarios_written"] == 1 and not stats["failed_units"]
    [(scene, dropped)] = _read_scenes(str(tmp_path))
    assert scene.scenario_id.item() == scenario_id and len(dropped) == 0


def _write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def test_bad_inputs_are_counted_or_fail_their_unit(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    gen = SyntheticScenarioGenerator(num_agents=150, seed=5)
    crowded = gen.generate(0)
    empty = gen.generate(1)
    valid = empty.valid.copy()
    valid[:, CURRENT_INDEX] = False
    empty = empty._replace(valid=valid)
    nan = gen.generate(2)
    xyz = nan.xyz.copy()
    xyz[nan.sdc_index, 20, 1] = np.nan
    nan = nan._replace(xyz=xyz)
    _write_records(
        inputs / "mixed.tfrecord",
        [
            to_scenario_proto(crowded).SerializeToString(),
            b"\x08\xff\xff\xff this is not a proto",
            to_scenario_proto(empty).SerializeToString(),
            to_scenario_proto(nan).SerializeToString(),
        ],
    )
    good = open(os.path.join(SAMPLE_DIR, "womd_scenario_input.tfrecord"), "rb").read()
    (inputs / "truncated.tfrecord").write_bytes(good + good[:1000])
    out = tmp_path / "out"
    stats = preprocess.run(str(inputs / "*.tfrecord"), str(out), "scenario")
    assert stats["scenarios_read"] == 4 and stats["scenarios_written"] == 1
    assert stats["skipped"] == {"bad_record": 1, "no_valid_agents": 1, "non_finite_state": 1}
    assert "mixed.tfrecord:1" in stats["skipped_examples"]["bad_record"][0]
    assert "mixed.tfrecord:3" in stats["skipped_examples"]["non_finite_state"][0]
    assert stats["agents_kept"] == 128
    assert stats["agents_dropped"] == int(crowded.valid[:, CURRENT_INDEX].sum()) - 128 > 0
    [(name, error)] = stats["failed_units"].items()
    assert name.startswith("truncated-") and "truncated.tfrecord:1: corrupt or truncated" in error
    assert "function_node" not in error and "[Op:" not in error  # no TF-internal names
    # nothing of the failed unit is on disk; it is retried (and fails again) on the next run
    assert not [f for f in os.listdir(out) if f.startswith("truncated-")]
    [(scene, dropped)] = _read_scenes(str(out))
    assert len(dropped) == scene.num_agents_dropped == stats["agents_dropped"]


def test_interrupted_unit_is_redone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    [unit] = shard_writer.plan_units([EXAMPLE_FILE], "example", 256)
    stale = [out / f"{unit.name}-00000.tfrecord.gz", out / f"{unit.name}-00001.tfrecord.gz.tmp-9"]
    for path in stale:
        path.write_bytes(b"partial")
    stats = preprocess.run(EXAMPLE_FILE, str(out), "example")
    assert stats["units_processed"] == 1 and stats["scenarios_written"] == 1
    assert sorted(os.listdir(out)) == sorted(
        [f"{unit.name}-00000.tfrecord.gz", "plan.json", f"{unit.name}.stats.json", "stats.json"]
    )
    assert len(_read_scenes(str(out))) == 1
