"""End-to-end learning on the bundled scenes (docs/learning.md has the figures and commands).

BC loss must fall clearly; RL fine-tuning with lambda > 0 from the BC checkpoint must lower the
collision rate of 32 sampled rollouts per scene by >= 30% relative while ADE rises <= 10%.
Takes ~10-25 min on 2 CPU cores, hence slow.
"""

import json
import re
import subprocess

import pytest

from tests.fixtures import training as fixtures

# `long` (10-25 min): not in CI's run; MOTION_SIM_LONG=1 bash tools/test.sh runs it.
pytestmark = [pytest.mark.slow, pytest.mark.long]

BC_STEPS, RL_STEPS = 300, 90


def _losses(stdout):
    return [
        float(m.group(1)) for m in re.finditer(r"^step \d+/\d+ .* loss=([-\d.e]+)", stdout, re.M)
    ]


def _eval(ckpt, data):
    proc = subprocess.run(
        [
            fixtures.PYTHON,
            "-m",
            "motion_sim.closed_loop_eval",
            f"--checkpoint={ckpt}",
            "--gin_file=gin/test_tiny.gin",
            f"--data={data}",
            "--num_rollouts=32",
            "--seed=1",
        ],
        cwd=fixtures.REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def test_bc_then_rl_reduces_collisions(tmp_path):
    out = tmp_path / "data"
    for fmt, pattern in [
        ("scenario", "*scenario*.tfrecord"),
        ("example", "*example*.tfrecord"),
        ("gpudrive", "*.json"),
    ]:
        from motion_sim.data import preprocess

        preprocess.run(f"{fixtures.SAMPLE_DIR}/{pattern}", str(out / fmt), fmt)
    data = f"{out}/*/*.tfrecord.gz"

    bc = fixtures.run_cli(
        str(tmp_path / "bc"),
        ["gin/demo_pretrain.gin"],
        [f"DEMO_DATA='{data}'", f"train.max_steps={BC_STEPS}"],
        timeout=3600,
    )
    assert bc.returncode == 0, bc.stderr[-3000:]
    losses = _losses(bc.stdout)
    assert losses[-1] < 0.5 * losses[0], losses

    rl = fixtures.run_cli(
        str(tmp_path / "rl"),
        ["gin/demo_finetune.gin"],
        [
            f"DEMO_DATA='{data}'",
            f"PRETRAINED_CHECKPOINT='{tmp_path / 'bc'}'",
            f"train.max_steps={RL_STEPS}",
        ],
        timeout=3600,
    )
    assert rl.returncode == 0, rl.stderr[-3000:]

    before, after = _eval(tmp_path / "bc", data), _eval(tmp_path / "rl", data)
    print("before", before, "after", after)
    assert after["collision_rate"] <= 0.7 * before["collision_rate"], (before, after)
    assert after["ade"] <= 1.1 * before["ade"], (before, after)
