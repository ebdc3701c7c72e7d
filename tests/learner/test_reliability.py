"""Training under faults (issue 15): one writer per root_dir, intact-checkpoint fall-back, gin
type errors, raw Scenario files as training data, unwritable root_dir -- each a one-line error
naming the cause and the path."""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

import gin
from motion_sim import train as train_lib
from motion_sim.data import pipeline, run_lock
from motion_sim.learner import checkpointing, gin_config
from tests import fixtures as shared
from tests.fixtures import training as fixtures


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _train(root, bindings):
    train_lib.parse_gin(["gin/demo_pretrain.gin"], bindings)
    return train_lib.train(str(root))


@pytest.mark.parametrize(
    "binding,message",
    [
        ("train.max_steps = 'abc'", "train.max_steps='abc': expected an integer, got str"),
        ("train.batch_size = 2.5", "train.batch_size=2.5: expected an integer, got float"),
        ("train.batch_size = 0", "train.batch_size=0: must be >= 1"),
        ("train.grad_clip_norm = 'x'", "train.grad_clip_norm='x': expected a number or None"),
    ],
)
def test_gin_type_errors_are_one_line(tmp_path, binding, message):
    with pytest.raises(gin_config.ConfigError, match=message.replace(".", r"\.")):
        _train(tmp_path / "run", [f"DEMO_DATA = '{tmp_path}/x'", binding])
    assert not os.path.exists(tmp_path / "run")


def test_raw_scenario_tfrecord_as_training_data_is_named(tmp_path):
    raw = shared.WOMD_SCENARIO_FILE
    with pytest.raises(
        pipeline.DataError, match=f"{raw}: record 0 is not a scene shard record .*preprocess"
    ):
        _train(tmp_path / "run", [f"DEMO_DATA = '{raw}'"])
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_unwritable_root_dir_is_one_line_naming_it(tmp_path):
    shards = fixtures.preprocess_sample(str(tmp_path / "scenes"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(run_lock.RunLockError, match=f"{tmp_path}/file/run: cannot write"):
        _train(tmp_path / "file" / "run", [f"DEMO_DATA = '{shards}'"])


def test_root_dir_held_by_a_live_run_is_refused(tmp_path):
    shards = fixtures.preprocess_sample(str(tmp_path / "scenes"))
    root = tmp_path / "run"
    root.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (root / run_lock.LOCK_NAME).write_text(
            json.dumps(
                {
                    "host": socket.gethostname(),
                    "pid": holder.pid,
                    "purpose": "training",
                    "started": "2026-01-01T00:00:00+00:00",
                }
            )
        )
        with pytest.raises(run_lock.RunLockError, match=f"in use by another run.*{holder.pid}"):
            _train(root, [f"DEMO_DATA = '{shards}'", "train.max_steps = 1"])
        assert not (root / "checkpoints").exists() and not (root / "train").exists()
    finally:
        holder.kill()
        holder.wait()


def _checkpointer(directory, value):
    step = tf.Variable(0, dtype=tf.int64)
    weights = tf.Variable(tf.fill([1000], value))
    return (
        checkpointing.Checkpointer(
            str(directory), tf.distribute.get_strategy(), step=step, weights=weights
        ),
        step,
        weights,
    )


def test_truncated_latest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    ckpt, step, weights = _checkpointer(tmp_path, 0.0)
    for k in (1, 2):
        step.assign(k)
        weights.assign(tf.fill([1000], float(k)))
        ckpt.save(k)
    [data] = glob.glob(str(tmp_path / "ckpt-2.data*"))
    with open(data, "rb") as f:
        payload = f.read()
    with open(data, "wb") as f:
        f.write(payload[: len(payload) // 2])
    fresh, step, weights = _checkpointer(tmp_path, 0.0)
    assert fresh.restore_or_initialize() == str(tmp_path / "ckpt-1")
    assert int(step.numpy()) == 1 and float(weights.numpy()[0]) == 1.0
    text = caplog.text
    assert f"{tmp_path}/ckpt-2 is unreadable" in text
    assert f"Restored the previous intact checkpoint {tmp_path}/ckpt-1" in text
    # Every checkpoint broken: one error naming the directory.
    [data] = glob.glob(str(tmp_path / "ckpt-1.data*"))
    with open(data, "wb"):
        pass
    broken, _, _ = _checkpointer(tmp_path, 0.0)
    with pytest.raises(
        checkpointing.CheckpointError, match=f"every checkpoint in {tmp_path} is unreadable"
    ):
        broken.restore_or_initialize()


@pytest.mark.slow
def test_two_concurrent_trainings_on_one_root_dir_cannot_both_write(tmp_path):
    """The real CLI twice on one --root_dir: the second stops at once naming the first."""
    shards = fixtures.preprocess_sample(str(tmp_path / "scenes"))
    root = str(tmp_path / "run")
    bindings = [
        f"DEMO_DATA='{shards}'",
        "train.max_steps=100000",
        "train.log_interval=1",
        "train.steps_per_loop=1",
        "SimAgentModel.max_steps = 16",
    ]
    cmd = [
        fixtures.PYTHON,
        "-m",
        "motion_sim.train",
        f"--root_dir={root}",
        "--gin_file=gin/demo_pretrain.gin",
        *[f"--gin_bindings={b}" for b in bindings],
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(
            cmd, cwd=shared.REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.time() + 240
        while not os.path.exists(os.path.join(root, "train")):  # the first run is writing
            assert first.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        second = subprocess.run(
            cmd, cwd=shared.REPO, env=env, capture_output=True, text=True, timeout=240, check=False
        )
        assert second.returncode == 2, second.stderr[-3000:]
        assert (
            f"motion_sim.train: error: {root} is in use by another run (training, pid {first.pid}"
        ) in second.stderr
        assert first.poll() is None  # the first run was not disturbed
        events = glob.glob(os.path.join(root, "train", "events.out.tfevents.*"))
        assert len(events) == 1, events  # one writer: no interleaved second event file
    finally:
        first.terminate()
        first.wait(timeout=120)
    assert not os.path.exists(os.path.join(root, run_lock.LOCK_NAME))  # released on SIGTERM
