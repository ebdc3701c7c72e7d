"""WOSAC submission generator: real CLI end to end, resume, skips and clear errors."""

from __future__ import annotations

import json
import os
import re
import tarfile

import pytest
import tensorflow as tf
from waymo_open_dataset.protos import sim_agents_submission_pb2
from waymo_open_dataset.utils.sim_agents import submission_specs

from export import batched_rollouts, loader, wosac_submission
from motion_sim.data.datatypes import ScenarioError
from tests.fixtures import SCENARIO_FILES, cli
from tests.fixtures.scenarios import read_scenarios

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCENARIOS_GLOB = ",".join(SCENARIO_FILES)
METADATA_FLAGS = [
    "--account_name=sim@example.com",
    "--method_name=cv_baseline",
    "--authors=Ada,Grace",
    "--affiliation=Test Lab",
    "--description=constant velocity",
    "--method_link=https://x.y",
    "--num_model_parameters=0",
    "--uses_lidar_data=false",
    "--uses_camera_data=false",
    "--uses_public_model_pretraining=false",
    "--acknowledge_complies_with_closed_loop_requirement=true",
]
METADATA = {
    "account_name": "sim@example.com",
    "unique_method_name": "cv_baseline",
    "authors": ["Ada", "Grace"],
    "affiliation": "Test Lab",
    "description": "constant velocity",
    "method_link": "https://x.y",
    "num_model_parameters": "0",
    "uses_lidar_data": False,
    "uses_camera_data": False,
    "uses_public_model_pretraining": False,
    "public_model_names": [],
    "acknowledge_complies_with_closed_loop_requirement": True,
}


def _run(module, *args):
    return cli.run_module(module, *args, timeout=300)


def _shard_names(output_dir):
    return sorted(
        n
        for n in os.listdir(output_dir)
        if n.startswith("submission.binproto-") and not n.endswith((".json", ".part"))
    )


def test_cli_end_to_end_validates_with_official_specs(tmp_path):
    model_dir = tmp_path / "cv_model"
    result = _run("export.export_baseline", "--kind=constant_velocity", f"--output_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "submission"
    result = _run(
        "export.wosac_submission",
        f"--saved_model={model_dir}",
        f"--scenarios={SCENARIOS_GLOB}",
        f"--output_dir={out}",
        "--shard_size=1",
        "--seed=5",
        *METADATA_FLAGS,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["scenarios_written"] == 2 and summary["scenarios_skipped"] == 0
    assert summary["sim_agents"] == 50 + 84 and summary["fallback_agents"] == 0
    # tqdm progress bar: "[elapsed<remaining, rate]" -- the remaining time is the ETA.
    assert re.search(r"2/2 \[\d\d:\d\d<\d\d:\d\d", result.stderr), result.stderr[-500:]

    unpacked = tmp_path / "unpacked"
    with tarfile.open(out / "submission.tar.gz") as tar:
        tar.extractall(unpacked)
    names = sorted(os.listdir(unpacked))
    assert names == ["submission.binproto-00000-of-00002", "submission.binproto-00001-of-00002"]
    scenarios = {s.scenario_id: s for _, s in read_scenarios()}
    seen = []
    for name in names:
        submission = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(
            (unpacked / name).read_bytes()
        )
        assert submission.submission_type == submission.SIM_AGENTS_SUBMISSION
        assert submission.unique_method_name == "cv_baseline"
        assert list(submission.authors) == ["Ada", "Grace"]
        assert submission.acknowledge_complies_with_closed_loop_requirement
        for rollouts in submission.scenario_rollouts:
            submission_specs.validate_scenario_rollouts(rollouts, scenarios[rollouts.scenario_id])
            seen.append(rollouts.scenario_id)
    assert sorted(seen) == sorted(scenarios)


def test_cli_refuses_open_loop(tmp_path):
    flags_ = [f if "closed_loop" not in f else f.replace("true", "false") for f in METADATA_FLAGS]
    result = _run(
        "export.wosac_submission",
        f"--saved_model={tmp_path}",
        f"--scenarios={SCENARIOS_GLOB}",
        f"--output_dir={tmp_path / 'o'}",
        *flags_,
    )
    assert result.returncode != 0 and "closed_loop_requirement must be true" in result.stderr
    assert not (tmp_path / "o").exists()


def test_resume_keeps_finished_shards_and_ignores_temp_files(tmp_path, cv_saved_model, monkeypatch):
    out = str(tmp_path / "sub")
    wosac_submission.write_submission(cv_saved_model, SCENARIOS_GLOB, out, METADATA, shard_size=1)
    first, second = [os.path.join(out, n) for n in _shard_names(out)]
    first_bytes, first_mtime = open(first, "rb").read(), os.stat(first).st_mtime_ns
    # Simulate a crash while writing the second shard: final file gone, a half-written temp.
    os.remove(second)
    os.remove(os.path.join(out, "submission.tar.gz"))
    half = os.path.join(out, ".submission.binproto-00001-of-00002.tmp-crash")
    with open(half, "wb") as f:
        f.write(b"\x0a\xff\xff")
    calls = []
    real = batched_rollouts.BatchedRollouts.run_units
    monkeypatch.setattr(
        batched_rollouts.BatchedRollouts,
        "run_units",
        lambda self, units, seed: (
            calls.extend(i.source for u in units for i in u) or real(self, units, seed)
        ),
    )
    totals = wosac_submission.write_submission(
        cv_saved_model, SCENARIOS_GLOB, out, METADATA, shard_size=1
    )
    assert totals["resumed"] and totals["shards_written_this_run"] == 1
    assert calls == [f"{SCENARIO_FILES[1]}:0"]  # only the missing shard's scenario was redone
    assert os.stat(first).st_mtime_ns == first_mtime and open(first, "rb").read() == first_bytes
    assert totals["scenarios_written"] == 2 and totals["sim_agents"] == 134
    with tarfile.open(os.path.join(out, "submission.tar.gz")) as tar:
        assert sorted(tar.getnames()) == _shard_names(out)
        member = tar.extractfile(tar.getmember(os.path.basename(second))).read()
    assert member == open(second, "rb").read()
    sim = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(member)
    assert len(sim.scenario_rollouts) == 1

    with pytest.raises(ValueError, match="different plan.*settings.seed"):
        wosac_submission.write_submission(
            cv_saved_model, SCENARIOS_GLOB, out, METADATA, shard_size=1, seed=9
        )


def _write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def test_bad_record_is_skipped_counted_and_named(tmp_path, cv_saved_model):
    mixed = tmp_path / "mixed.tfrecord"
    _, scenario = read_scenarios()[0]
    _write_records(mixed, [b"\x0a\xff\xff\xff\x0f", scenario.SerializeToString()])
    out = str(tmp_path / "strict")
    with pytest.raises(RuntimeError, match=f"1 scenarios skipped.*{mixed}:0"):
        wosac_submission.write_submission(cv_saved_model, str(mixed), out, METADATA)
    assert not os.path.exists(os.path.join(out, "submission.tar.gz"))
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["skipped"][0]["source"] == f"{mixed}:0"
    assert stats["skipped"][0]["reason"] == "bad_record"

    totals = wosac_submission.write_submission(
        cv_saved_model, str(mixed), str(tmp_path / "lenient"), METADATA, max_skipped=1
    )
    assert totals["scenarios_written"] == 1 and totals["scenarios_skipped"] == 1
    assert os.path.exists(totals["tarball"])


def test_corrupt_scenario_file_is_a_clear_error(tmp_path, cv_saved_model):
    bad = tmp_path / "corrupt.tfrecord"
    bad.write_bytes(open(SCENARIO_FILES[0], "rb").read()[:5000])  # truncated mid-record
    with pytest.raises(ScenarioError, match=f"{bad}:0.*corrupt or truncated"):
        wosac_submission.write_submission(cv_saved_model, str(bad), str(tmp_path / "o"), METADATA)
    empty = tmp_path / "empty.tfrecord"
    _write_records(empty, [])
    with pytest.raises(ValueError, match=f"{empty}: the matching files hold no records"):
        wosac_submission.write_submission(cv_saved_model, str(empty), str(tmp_path / "o"), METADATA)
    with pytest.raises(FileNotFoundError, match="no files match"):
        wosac_submission.write_submission(
            cv_saved_model, str(tmp_path / "none*.tfrecord"), str(tmp_path / "o"), METADATA
        )


def test_cli_reports_unreadable_model_and_bad_file(tmp_path, cv_saved_model):
    bad_model = tmp_path / "bad_model"
    bad_model.mkdir()
    (bad_model / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(loader.SimAgentLoadError, match=f"{bad_model}: cannot load SavedModel"):
        wosac_submission.write_submission(
            str(bad_model), SCENARIOS_GLOB, str(tmp_path / "o"), METADATA
        )
    bad = tmp_path / "junk.tfrecord"
    bad.write_bytes(b"not a tfrecord at all, just text")
    result = _run(
        "export.wosac_submission",
        f"--saved_model={cv_saved_model}",
        f"--scenarios={bad}",
        f"--output_dir={tmp_path / 'o2'}",
        *METADATA_FLAGS,
    )
    assert result.returncode == 1
    assert f"error: {bad}:0" in result.stderr


def test_failing_model_stops_the_run_naming_the_scenario(tmp_path):
    from export import signature
    from motion_sim.data import datatypes

    def wrong_batch(scene, seed, num_rollouts):  # passes the static check, fails at run time
        batch = tf.shape(scene["agent_mask"])[0] * 2
        return tf.zeros(tf.stack([batch, num_rollouts, datatypes.MAX_AGENTS, 80, 4]))

    model = signature.export_sim_agent(wrong_batch, str(tmp_path / "broken"))
    with pytest.raises(
        RuntimeError,
        match=f"(?s){SCENARIO_FILES[0]}:0: the sim agent failed.*"
        r"\[B, R, A, 80, 4\]",
    ):
        wosac_submission.write_submission(model, SCENARIOS_GLOB, str(tmp_path / "o"), METADATA)
