"""The preprocess benchmark runs and reports every figure (slow: imports TF, traces twice); its
pipeline figure reads distinct scenes from shard files (>= 1,000 by default)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.slow
def test_benchmark_prints_one_json_line():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.benchmarks.preprocess",
            "--num_protos=4",
            "--pipeline_scenes=24",
            "--pipeline_shards=3",
            "--batch_size=4",
            "--synthetic_agents=20",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "protos_per_s_per_worker",
        "protos_per_cpu_s",
        "protos_per_s_per_worker_with_token_stats",
        "disk_pipeline_scenarios_per_s",
        "cached_pipeline_scenarios_per_s",
        "pipeline_mb",
    ):
        assert figures[key] > 0, key
    # One pass read every scene once: all distinct, from the 3 shards on disk.
    assert figures["pipeline_distinct_scenes"] == figures["pipeline_distinct_scenes_read"] == 24
    assert figures["pipeline_shards"] == 3


@pytest.mark.slow
def test_pipeline_default_reads_at_least_1000_distinct_scenes():
    result = subprocess.run(
        [sys.executable, "-m", "motion_sim.benchmarks.preprocess", "--helpshort"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    help_text = result.stdout + result.stderr
    default = int(help_text.split("--pipeline_scenes:")[1].split("(default: '")[1].split("'")[0])
    assert default >= 1000, help_text
