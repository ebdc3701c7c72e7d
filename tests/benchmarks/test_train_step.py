"""The train-step benchmark on the tiny model: both utilisations printed, named as such, and its
executed FLOPs equal to the traced graph's (slow: trains a few steps in a fresh process)."""

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures import REPO


@pytest.mark.slow
def test_bc_prints_useful_mfu_and_hardware_utilisation():
    cmd = [
        sys.executable,
        "-m",
        "motion_sim.benchmarks.train_step",
        "--gin_file=gin/model_tiny.gin",
        "--which=bc",
        "--steps=1",
        "--repeats=1",
        "--roofline_dim=256",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bc_matmul_gflop"] == pytest.approx(out["bc_graph_matmul_gflop"], rel=1e-9)
    # The sample scenes fill 50 and 84 of 128 agent slots: useful work is well below executed.
    assert out["valid_agents"] == [50, 84, 50, 84] and out["agent_slots"] == 128
    assert 0 < out["bc_useful_gflop"] < 0.8 * out["bc_matmul_gflop"]
    assert out["bc_useful_fraction"] == pytest.approx(
        out["bc_useful_gflop"] / out["bc_matmul_gflop"], abs=1e-4
    )
    ratio = out["bc_useful_mfu"] / out["bc_hardware_utilisation"]
    assert ratio == pytest.approx(out["bc_useful_fraction"], abs=1e-3)
    assert "bc_mfu" not in out  # the ambiguous name is gone
