"""The policy_eval CLI end to end on the bundled GPUDrive scene (log and constant velocity)."""

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures import GPUDRIVE_FILE, REPO, SAMPLE_DIR


def _run(out, *extra):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.policy_eval",
            f"--scenarios={GPUDRIVE_FILE},{SAMPLE_DIR}/motion_data_one_example.tfrecord",
            "--sim_agents=log,cv",
            f"--output_dir={out}",
            "--rollouts=2",
            "--bootstrap=20",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.mark.slow  # 64 planners x 2 worlds on one scene (~1-2 min on the shared box)
def test_cli_tables_plot_resume(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["scenes"] == 1
    assert sum(line["skipped"].values()) == 1  # the tf.Example file is not a Scenario proto
    summary = json.loads((tmp_path / "policy_eval.json").read_text())
    assert len(summary["planners"]) == 64
    gt = summary["worlds"]["log"]["vs_ground_truth"]
    assert gt["spearman"]["value"] == pytest.approx(1.0)
    assert gt["mae"]["value"] == 0.0 and gt["regret@1"]["value"] == 0.0
    assert set(summary["worlds"]) == {"log", "cv"}
    assert (tmp_path / "policy_eval.png").stat().st_size > 1000
    assert "| cv |" in (tmp_path / "policy_eval.md").read_text()
    scene_file = tmp_path / "scenes" / "1c365f15b70ebdbf.json"
    record = json.loads(scene_file.read_text())
    assert len(record["worlds"]["cv"]["returns"]) == 64
    assert len(record["worlds"]["cv"]["returns"][0]) == 2
    # Resume: a rerun computes nothing again (the scene file is reused as is).
    before = scene_file.stat().st_mtime_ns
    again = _run(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert scene_file.stat().st_mtime_ns == before
    assert (
        json.loads(again.stdout.strip().splitlines()[-1])["seconds_per_scene_per_world"]
        == line["seconds_per_scene_per_world"]
    )
