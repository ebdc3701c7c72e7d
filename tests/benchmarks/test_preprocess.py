"""The preprocess benchmark runs and reports every figure (slow: imports TF, traces twice)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.slow
def test_benchmark_prints_one_json_line():
    result = subprocess.run(
        [sys.executable, "-m", "motion_sim.benchmarks.preprocess", "--num_protos=4",
         "--pipeline_scenes=16", "--batch_size=4", "--pipeline_batches=4"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("protos_per_s_per_worker", "protos_per_cpu_s",
                "protos_per_s_per_worker_with_token_stats", "cached_pipeline_scenarios_per_s"):
        assert figures[key] > 0, key
