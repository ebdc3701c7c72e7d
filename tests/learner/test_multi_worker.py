"""MultiWorkerMirroredStrategy through the real CLI: 2 worker processes on localhost (TF_CONFIG,
as launch/multi_worker.sh sets it), one CPU each.

Checks that a 2-worker run trains and checkpoints (chief files in the shared directory, each
worker's data position beside them); that stopping at step 3 and re-running the same command to
step 60 gives exactly the weights of a straight 60-step run; and that SIGTERM to ONE worker
(PreemptionCheckpointHandler) makes both save at the same step and exit 42, after which the same
command again also ends on exactly those weights. A control run whose per-worker data positions
were deleted re-opens its streams (with a warning) and must end elsewhere, so the equalities are
sensitive to the data position.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import training as fixtures

pytestmark = pytest.mark.slow


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


TOTAL = 60


def _start_cluster(root, shards, max_steps, log_dir):
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs, logs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        cmd = [
            fixtures.PYTHON,
            "-m",
            "motion_sim.train",
            f"--root_dir={root}",
            "--gin_file=gin/demo_pretrain.gin",
            f"--gin_bindings=DEMO_DATA='{shards}'",
            f"--gin_bindings=train.max_steps={max_steps}",
            "--gin_bindings=train.steps_per_loop=1",
            "--gin_bindings=train.checkpoint_interval=30",
            "--gin_bindings=train.log_interval=5",
            "--gin_bindings=train.shuffle_data=False",
        ]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(tf_config))
        logs.append(
            os.path.join(
                log_dir, f"{os.path.basename(root)}-{max_steps}-{index}-{time.monotonic_ns()}.log"
            )
        )
        with open(logs[-1], "w") as out:
            procs.append(
                subprocess.Popen(
                    cmd, cwd=fixtures.REPO, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )
    return procs, logs


def _wait(procs, logs, expect=0):
    codes = [p.wait(timeout=600) for p in procs]
    texts = [open(path).read() for path in logs]
    for code, text in zip(codes, texts):
        assert code == expect, text[-4000:]
    return texts


def _run_cluster(root, shards, max_steps, log_dir):
    return _wait(*_start_cluster(root, shards, max_steps, log_dir))


def _preempt_cluster(root, shards, log_dir):
    """Starts a TOTAL-step run and sends SIGTERM to worker 1 alone once it logged step 10."""
    procs, logs = _start_cluster(root, shards, TOTAL, log_dir)
    deadline = time.time() + 600
    while "step 10/" not in open(logs[1]).read():
        assert time.time() < deadline and all(p.poll() is None for p in procs), open(
            logs[1]
        ).read()[-4000:]
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    return _wait(procs, logs, expect=42)


def _weights(root, step):
    reader = tf.train.load_checkpoint(os.path.join(root, "checkpoints", f"ckpt-{step}"))
    return {
        n: reader.get_tensor(n)
        for n in reader.get_variable_to_shape_map()
        if n.startswith("model/")
    }


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi_worker")
    logs = str(tmp)
    shards = fixtures.four_scene_shards(str(tmp / "scenes"))
    names = ("straight", "resumed", "control", "preempted")
    straight, resumed, control, preempted = (str(tmp / n) for n in names)
    out = dict(straight=straight, resumed=resumed, control=control, preempted=preempted)
    out["straight_logs"] = _run_cluster(straight, shards, TOTAL, logs)
    _run_cluster(resumed, shards, 3, logs)
    shutil.copytree(resumed, control)
    out["resumed_logs"] = _run_cluster(resumed, shards, TOTAL, logs)
    for worker in (0, 1):
        shutil.rmtree(os.path.join(control, "checkpoints", f"data_worker_{worker}"))
    out["control_logs"] = _run_cluster(control, shards, TOTAL, logs)
    out["preempted_logs"] = _preempt_cluster(preempted, shards, logs)
    out["preempted_checkpoint"] = tf.train.latest_checkpoint(os.path.join(preempted, "checkpoints"))
    out["after_preemption_logs"] = _run_cluster(preempted, shards, TOTAL, logs)
    return out


def test_two_workers_train_and_checkpoint(runs):
    ckpt = os.path.join(runs["straight"], "checkpoints")
    assert os.path.exists(os.path.join(ckpt, f"ckpt-{TOTAL}.index"))
    for worker in (0, 1):
        assert os.path.exists(os.path.join(ckpt, f"data_worker_{worker}", f"ckpt-{TOTAL}.index"))
    # Only the chief writes summaries and the operative config.
    assert os.path.exists(os.path.join(runs["straight"], "operative_config.gin"))
    assert os.listdir(os.path.join(runs["straight"], "train"))
    assert all(f"step {TOTAL}/{TOTAL}" in log for log in runs["straight_logs"])


def test_restart_resumes_every_workers_data_position(runs):
    for log in runs["resumed_logs"]:
        assert "Resumed from" in log and "ckpt-3" in log
        assert "Restored this worker's data position" in log
    assert _max_diff(_weights(runs["straight"], TOTAL), _weights(runs["resumed"], TOTAL)) <= 1e-7


def test_lost_data_positions_reopen_the_stream_and_change_the_result(runs):
    assert all("re-opens its input stream" in log for log in runs["control_logs"])
    assert _max_diff(_weights(runs["straight"], TOTAL), _weights(runs["control"], TOTAL)) > 1e-4


def test_sigterm_to_one_worker_checkpoints_all_and_resumes_exactly(runs):
    path = runs["preempted_checkpoint"]
    step = int(path.rsplit("-", 1)[1])
    assert 10 <= step < TOTAL, path
    for worker in (0, 1):  # both saved their data position at the agreed step
        assert os.path.exists(
            os.path.join(
                runs["preempted"], "checkpoints", f"data_worker_{worker}", f"ckpt-{step}.index"
            )
        )
    assert all("checkpoint saved. Exiting" in log for log in runs["preempted_logs"])
    for log in runs["after_preemption_logs"]:
        assert f"ckpt-{step}" in log and "Restored this worker's data position" in log
    assert _max_diff(_weights(runs["straight"], TOTAL), _weights(runs["preempted"], TOTAL)) <= 1e-7
