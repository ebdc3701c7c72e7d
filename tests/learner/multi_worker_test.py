"""MultiWorkerMirroredStrategy through the real CLI: 2 worker processes on localhost (TF_CONFIG,
as launch/multi_worker.sh sets it), one CPU each.

Checks that a 2-worker run trains and checkpoints (chief files in the shared directory, each
worker's data position beside them), and that stopping at step 3 and re-running the same command
to step 6 gives exactly the weights of a straight 6-step run. A control run whose per-worker
data positions were deleted re-opens its streams (with a warning) and must end elsewhere, so the
equality is sensitive to the data position.
"""
import json
import os
import shutil
import socket
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tests.learner import fixtures
from tests.learner.mirrored_resume_check import four_scene_shards

pytestmark = pytest.mark.slow


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _run_cluster(root, shards, max_steps):
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        cmd = [fixtures.PYTHON, "-m", "motion_sim.train", f"--root_dir={root}",
               "--gin_file=gin/demo_pretrain.gin", f"--gin_bindings=DEMO_DATA='{shards}'",
               f"--gin_bindings=train.max_steps={max_steps}", "--gin_bindings=train.steps_per_loop=1",
               "--gin_bindings=train.checkpoint_interval=3", "--gin_bindings=train.shuffle_data=False"]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(tf_config))
        procs.append(subprocess.Popen(cmd, cwd=fixtures.REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    logs = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        logs.append(out)
        assert p.returncode == 0, out[-4000:]
    return logs


def _weights(root, step):
    reader = tf.train.load_checkpoint(os.path.join(root, "checkpoints", f"ckpt-{step}"))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n.startswith("model/")}


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi_worker")
    shards = four_scene_shards(str(tmp / "scenes"))
    straight, resumed, control = (str(tmp / n) for n in ("straight", "resumed", "control"))
    straight_logs = _run_cluster(straight, shards, 6)
    _run_cluster(resumed, shards, 3)
    shutil.copytree(resumed, control)
    resumed_logs = _run_cluster(resumed, shards, 6)
    for worker in (0, 1):
        shutil.rmtree(os.path.join(control, "checkpoints", f"data_worker_{worker}"))
    control_logs = _run_cluster(control, shards, 6)
    return dict(straight=straight, resumed=resumed, control=control, straight_logs=straight_logs,
                resumed_logs=resumed_logs, control_logs=control_logs)


def test_two_workers_train_and_checkpoint(runs):
    ckpt = os.path.join(runs["straight"], "checkpoints")
    assert os.path.exists(os.path.join(ckpt, "ckpt-6.index"))
    for worker in (0, 1):
        assert os.path.exists(os.path.join(ckpt, f"data_worker_{worker}", "ckpt-6.index"))
    # Only the chief writes summaries and the operative config.
    assert os.path.exists(os.path.join(runs["straight"], "operative_config.gin"))
    assert os.listdir(os.path.join(runs["straight"], "train"))
    assert all("step 6/6" in log for log in runs["straight_logs"])


def test_restart_resumes_every_workers_data_position(runs):
    for log in runs["resumed_logs"]:
        assert "Resumed from" in log and "ckpt-3" in log
        assert "Restored this worker's data position" in log
    assert _max_diff(_weights(runs["straight"], 6), _weights(runs["resumed"], 6)) <= 1e-7


def test_lost_data_positions_reopen_the_stream_and_change_the_result(runs):
    assert all("re-opens its input stream" in log for log in runs["control_logs"])
    assert _max_diff(_weights(runs["straight"], 6), _weights(runs["control"], 6)) > 1e-4
