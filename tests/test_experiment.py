"""The experiment command: its plan (paper config, by dry run), and every stage end to end (CI).

The effect claim (lambda > 0 lowers collisions on held-out scenes) is the long tier's
`test_cpu_study_claim`; docs/experiments.md has the measured study.
"""

import json
import os
import shlex
import subprocess
import sys

import pytest

from tests.fixtures import REPO


def _experiment(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "motion_sim.experiment", *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_paper_dry_run_prints_every_stage(tmp_path):
    proc = _experiment(
        "--gin_file=gin/experiment_paper.gin",
        f"--output_dir={tmp_path}",
        "--tpu=local",
        "--dry_run",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    names = [line.split(":", 1)[0].split("] ", 1)[1] for line in lines]
    core = ["bc", "rl_lam0", "rl_lam2", "rl_lam5", "rl_lam10"]
    controls = ["bc_cont", "rl_scratch"]
    expected = ["data", "preprocess"]
    for arms in (core, controls):
        expected += [f"train/{a}/s{s}" for a in arms for s in range(3)]
        expected += [f"export/{a}_s{s}" for a in arms for s in range(3)]
    expected += ["baselines", "heldout", "evaluate", "tables"]
    assert names == expected
    assert all(line.startswith("[todo] ") for line in lines)
    by_name = {n: shlex.split(line.split(": ", 1)[1]) for n, line in zip(names, lines)}
    assert any(
        a.startswith(
            "--input=gs://waymo_open_dataset_motion_v_1_2_0/uncompressed/scenario/training/"
        )
        for a in by_name["preprocess"]
    )
    bc = by_name["train/bc/s1"]
    assert "--gin_file=gin/pretrain_10m.gin" in bc
    assert "--gin_bindings=train.max_steps=1000000" in bc
    assert "--tpu=local" in bc and "--seed=1" in bc
    rl = by_name["train/rl_lam5/s2"]
    assert "--gin_file=gin/finetune_10m.gin" in rl and "--tpu=local" in rl
    assert "--gin_bindings=RewardFunction.collision_weight=5.0" in rl
    assert f"--gin_bindings=PRETRAINED_CHECKPOINT='{tmp_path}/runs/bc/s2'" in rl
    scratch = by_name["train/rl_scratch/s0"]
    assert "--gin_bindings=train.rl_from_scratch=True" in scratch
    assert "--gin_bindings=PRETRAINED_CHECKPOINT=None" in scratch
    cont = by_name["train/bc_cont/s0"]
    assert "--gin_bindings=make_optimizer.learning_rate=5e-06" in cont
    assert "--gin_bindings=train.max_steps=10000" in cont
    assert "--num_rollouts=32" in by_name["export/rl_lam2_s0"]
    assert not os.listdir(tmp_path)  # a dry run writes nothing
    # The 1M variant differs only in the model's gin files.
    proc = _experiment(
        "--gin_file=gin/experiment_paper_1m.gin", f"--output_dir={tmp_path}", "--dry_run"
    )
    assert proc.returncode == 0 and "--gin_file=gin/pretrain_1m.gin" in proc.stdout
    # The encoder comparison: the same study with the Wayformer-style encoder.
    proc = _experiment(
        "--gin_file=gin/experiment_paper_wayformer.gin", f"--output_dir={tmp_path}", "--dry_run"
    )
    assert proc.returncode == 0
    assert proc.stdout.count("--gin_file=gin/model_10m_wayformer.gin") == 7 * 3  # every run


def test_bad_config_is_a_one_line_error(tmp_path):
    proc = _experiment(
        "--gin_file=gin/experiment_ci.gin",
        f"--output_dir={tmp_path}",
        "--gin_bindings=experiment.table1_lambda=7.0",
        "--dry_run",
    )
    assert proc.returncode == 2
    assert "experiment: error: experiment.table1_lambda=7.0 is not one of" in proc.stderr


@pytest.mark.slow
def test_ci_experiment_produces_every_stage_and_table(tmp_path):
    out = tmp_path / "study"
    proc = _experiment("--gin_file=gin/experiment_ci.gin", f"--output_dir={out}", timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stages = sorted(os.listdir(out / "stages"))
    assert len(stages) == 15, stages  # data, 5 runs, 5 exports, baselines, heldout, eval, tables
    for name in ("table1.md", "table2.md", "results.json", "plot.png"):
        assert (out / name).stat().st_size > 0, name
    split = json.loads((out / "data" / "split.json").read_text())
    assert split["val_ids"] == ["1c365f15b70ebdbf"]
    assert "637f20cafde22ff8" in split["train_ids"] and "synthetic-0-0" in split["train_ids"]
    assert not set(split["train_ids"]) & set(split["val_ids"])
    results = json.loads((out / "results.json").read_text())
    assert set(results["summary"]) == {
        "constant_velocity",
        "bc",
        "rl_lam0",
        "rl_lam2",
        "bc_cont",
        "rl_scratch",
    }
    bc = results["summary"]["bc"]
    for key in (
        "composite_2023",
        "collision_indication_likelihood",
        "ade",
        "min_ade",
        "realism_meta_metric",
        "collision_rate",
        "offroad_rate",
    ):
        assert bc[key]["n"] == 1 and 0 <= bc[key]["mean"] < 1e3, key
    table1 = (out / "table1.md").read_text()
    for column in (
        "Lin. speed",
        "TTC",
        "Composite (2023)",
        "minADE (m)",
        "2025 realism",
        "Collision rate",
    ):
        assert column in table1
    assert "| BC + RL (λ = 2) |" in table1 and "| RL only" in table1
    assert "| 0 |" in (out / "table2.md").read_text()
    # Re-running skips every stage.
    again = _experiment("--gin_file=gin/experiment_ci.gin", f"--output_dir={out}", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done earlier, skipped") == 15


# The CPU study as docs/experiments.md ran it (controls off for CPU time). ~70-80 min on a
# loaded 2-core box; needs ../shared/gpudrive (the held-out real scenes).
CPU_STUDY_BINDINGS = (
    "experiment.lambdas=[0.0, 10.0]",
    "experiment.table1_lambda=10.0",
    "experiment.continued_bc=False",
    "experiment.scratch_steps=0",
)


@pytest.mark.slow
@pytest.mark.long
def test_cpu_study_claim(tmp_path):
    """The claim under test: on held-out scenes, lambda > 0 lowers the collision rate by >= 20%
    relative to both BC and lambda = 0, at ADE within +10%, on the seed means and for every
    seed (`export.experiment_report.claim_check`).

    Measured 2026-12-02 (docs/experiments.md): it does NOT hold -- lambda = 10 is 38% below BC
    but only 11% below lambda = 0 -- so this test fails until the method or the study changes;
    it states the claim, it does not tune towards it."""
    shared = os.path.join(os.path.dirname(REPO), "shared")
    proc = _experiment(
        "--gin_file=gin/experiment_cpu.gin",
        f"--output_dir={tmp_path}",
        f"--shared_dir={shared}",
        *[f"--gin_bindings={b}" for b in CPU_STUDY_BINDINGS],
        timeout=3 * 3600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    claims = json.loads((tmp_path / "results.json").read_text())["claims"]
    print(json.dumps(claims, indent=1))
    assert claims and all(c["holds"] for c in claims.values()), claims
