"""Submission writer under reruns and bad inputs (issue 15): the plan is keyed by content (model
fingerprint, input hashes), one writer per output directory, one rule for duplicate ids."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from export import signature, submission_shards, wosac_submission
from motion_sim.agents.random_agent import RandomAgent
from motion_sim.data import run_lock
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.synthetic import SyntheticScenarioGenerator
from tests.export.test_wosac_submission import METADATA, METADATA_FLAGS, REPO
from tests.fixtures import SCENARIO_FILE, SCENARIO_FILES, WOMD_SCENARIO_FILE

SCENARIOS_GLOB = ",".join(SCENARIO_FILES)


def _shards(output_dir):
    return sorted(
        n
        for n in os.listdir(output_dir)
        if n.startswith("submission.binproto-") and not n.endswith(".json")
    )


def _interrupted_run(model_dir, scenarios, out):
    """A finished 2-shard run with its second shard and tarball removed: what an interruption
    after the first shard leaves behind."""
    wosac_submission.write_submission(model_dir, scenarios, out, METADATA, shard_size=1)
    second = _shards(out)[1]
    os.remove(os.path.join(out, second))
    os.remove(os.path.join(out, "submission.tar.gz"))
    return _read_shards(out)


def _read_shards(output_dir):
    contents = {}
    for name in _shards(output_dir):
        with open(os.path.join(output_dir, name), "rb") as f:
            contents[name] = f.read()
    return contents


def test_model_reexported_into_the_same_dir_is_refused(tmp_path, cv_saved_model):
    model_dir = str(tmp_path / "model")
    shutil.copytree(cv_saved_model, model_dir)
    out = str(tmp_path / "sub")
    before = _interrupted_run(model_dir, SCENARIOS_GLOB, out)
    signature.export_sim_agent(RandomAgent(), model_dir)  # another model, same path
    with pytest.raises(
        ValueError,
        match=r"different plan: the SavedModel is not the one this "
        r"run started with .*Start fresh: use a new "
        r"--output_dir, or delete",
    ):
        wosac_submission.write_submission(model_dir, SCENARIOS_GLOB, out, METADATA, shard_size=1)
    assert _read_shards(out) == before
    assert not os.path.exists(os.path.join(out, "submission.tar.gz"))
    assert not os.path.exists(os.path.join(out, run_lock.LOCK_NAME))


def test_saved_model_key_is_content_not_path(tmp_path, cv_saved_model, random_saved_model):
    copy = str(tmp_path / "copy")
    shutil.copytree(cv_saved_model, copy)
    key = submission_shards.saved_model_key(cv_saved_model)
    assert key.startswith("fingerprint:") and submission_shards.saved_model_key(copy) == key
    assert submission_shards.saved_model_key(random_saved_model) != key
    os.remove(os.path.join(copy, "fingerprint.pb"))  # older TF: hash of the files
    assert submission_shards.saved_model_key(copy).startswith("files:")


def test_regenerated_input_is_refused(tmp_path, cv_saved_model):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(WOMD_SCENARIO_FILE, inputs / "a.tfrecord")
    shutil.copy(SCENARIO_FILE, inputs / "b.tfrecord")
    out = str(tmp_path / "sub")
    _interrupted_run(cv_saved_model, str(inputs / "*.tfrecord"), out)
    # Same path, same record count, other content.
    shutil.copy(WOMD_SCENARIO_FILE, inputs / "b.tfrecord")
    with pytest.raises(ValueError, match=r"input\(s\) changed content: .*b\.tfrecord"):
        wosac_submission.write_submission(
            cv_saved_model, str(inputs / "*.tfrecord"), out, METADATA, shard_size=1
        )


def test_duplicate_scenario_ids_across_inputs_keep_the_first(tmp_path, cv_saved_model):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SCENARIO_FILE, inputs / "a.tfrecord")
    shutil.copy(SCENARIO_FILE, inputs / "b.tfrecord")  # the same scenario again
    out = str(tmp_path / "sub")
    with pytest.raises(RuntimeError, match=r"1 scenarios skipped .*b\.tfrecord:0; no tarball"):
        wosac_submission.write_submission(
            cv_saved_model, str(inputs / "*.tfrecord"), out, METADATA, shard_size=1
        )
    with open(os.path.join(out, "stats.json")) as f:
        [skip] = json.load(f)["skipped"]
    assert skip["reason"] == "duplicate_scenario_id"
    assert "appears twice (kept" in skip["error"] and "a.tfrecord:0" in skip["error"]
    totals = wosac_submission.write_submission(
        cv_saved_model, str(inputs / "*.tfrecord"), out, METADATA, shard_size=1, max_skipped=1
    )
    assert totals["scenarios_written"] == 1  # the tarball holds each scenario once


def test_duplicate_object_ids_are_skipped_as_in_preprocess(tmp_path, cv_saved_model):
    raw = SyntheticScenarioGenerator(num_agents=8, seed=4).generate(0)
    track_id = raw.track_id.copy()
    track_id[3] = track_id[raw.sdc_index]
    path = tmp_path / "dup.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(to_scenario_proto(raw._replace(track_id=track_id)).SerializeToString())
    with pytest.raises(RuntimeError, match="1 scenarios skipped"):
        wosac_submission.write_submission(
            cv_saved_model, str(path), str(tmp_path / "sub"), METADATA
        )
    with open(tmp_path / "sub" / "stats.json") as f:
        [skip] = json.load(f)["skipped"]
    assert skip["reason"] == "duplicate_object_id" and f"{path}:0" in skip["error"]


def test_second_writer_on_one_output_dir_is_refused(tmp_path, cv_saved_model):
    out = tmp_path / "sub"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / run_lock.LOCK_NAME).write_text(
            json.dumps(
                {
                    "host": socket.gethostname(),
                    "pid": holder.pid,
                    "purpose": "submission",
                    "started": "2026-01-01T00:00:00+00:00",
                }
            )
        )
        with pytest.raises(run_lock.RunLockError, match=f"in use by another run.*{holder.pid}"):
            wosac_submission.write_submission(cv_saved_model, SCENARIOS_GLOB, str(out), METADATA)
        assert os.listdir(out) == [run_lock.LOCK_NAME]
    finally:
        holder.kill()
        holder.wait()


def _cli(module, *args, **popen):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.slow
def test_cli_interrupted_then_model_swapped_is_refused(tmp_path):
    """The real CLIs: submission interrupted (SIGKILL after its first shard), another baseline
    exported into the same --saved_model directory, the same command again -> refused."""
    model = str(tmp_path / "model")
    out = str(tmp_path / "sub")
    export = _cli("export.export_baseline", "--kind=constant_velocity", f"--output_dir={model}")
    assert export.wait(timeout=300) == 0, export.stderr.read()[-2000:]
    args = [
        f"--saved_model={model}",
        f"--scenarios={SCENARIOS_GLOB}",
        f"--output_dir={out}",
        "--shard_size=1",
        *METADATA_FLAGS,
    ]
    first = _cli("export.wosac_submission", *args)
    first_shard = os.path.join(out, "submission.binproto-00000-of-00002")
    deadline = time.time() + 300
    while not os.path.exists(first_shard) and first.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert os.path.exists(os.path.join(out, "plan.json"))
    export = _cli("export.export_baseline", "--kind=random", f"--output_dir={model}")
    assert export.wait(timeout=300) == 0, export.stderr.read()[-2000:]
    again = _cli("export.wosac_submission", *args)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 1, err[-2000:]
    assert "error: " in err and "the SavedModel is not the one this run started with" in err
    assert f"Start fresh: use a new --output_dir, or delete {out}" in err
    assert not os.path.exists(os.path.join(out, "submission.tar.gz"))
