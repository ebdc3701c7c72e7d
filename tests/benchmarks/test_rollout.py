"""The rollout benchmark: scene padding and one tiny end-to-end run (its FLOP counts are checked
against the traced graph in tests/benchmarks/test_model_flops.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import gin
from motion_sim.benchmarks import rollout
from tests.fixtures import GIN_DIR, REPO, cli
from tests.fixtures.testcase import TestCase


class RolloutBenchmarkTest(TestCase):
    def test_scene_has_exactly_the_requested_valid_agents(self):
        scene = rollout._scene(rollout._SAMPLE, 70)
        self.assertEqual(scene["agent_xy"].shape, (1, 70, 91, 2))
        self.assertEqual(int(scene["agent_mask"].sum()), 70)
        self.assertEqual(scene["agent_xy"].dtype, np.float32)
        now = scene["agent_xy"][0, :, 10]
        gaps = np.linalg.norm(now[:, None] - now[None], axis=-1) + np.eye(70) * 1e3
        self.assertGreater(gaps.min(), 0.0)  # copies are shifted, no two agents coincide

    @pytest.mark.slow
    def test_end_to_end_tiny(self):
        self.addCleanup(gin.clear_config)  # the benchmark binds gin globally
        with cli.program_flags(
            rollout.define_flags,
            gin_file=[f"{GIN_DIR}/model_tiny.gin"],
            agents=4,
            rollouts=2,
            repeats=1,
        ):
            with _Capture() as out:
                rollout.main([])
        result = json.loads(out.text.strip().splitlines()[-1])
        for key in (
            "params",
            "seconds_per_scenario",
            "tokens_per_second",
            "achieved_gflops",
            "matmul_gflops",
            "useful_mfu",
            "hardware_utilisation",
            "speedup_vs_uncached",
            "peak_memory_gb",
            "flop_ratio_vs_uncached",
        ):
            self.assertGreater(result[key], 0, key)
        # The test scene's agents are all valid, but map and light slots are padded.
        self.assertLess(result["useful_mfu"], result["hardware_utilisation"])
        self.assertEqual(result["trace_count"], 1)
        self.assertEqual(result["intra_op_threads"], 0)  # TF's default pool unless asked

    @pytest.mark.slow
    def test_intra_op_threads_flag_reaches_tf(self):
        # A fresh process: TF fixes its thread pools when it starts.
        cmd = [
            sys.executable,
            "-m",
            "motion_sim.benchmarks.rollout",
            f"--gin_file={GIN_DIR}/model_tiny.gin",
            "--agents=4",
            "--rollouts=2",
            "--repeats=1",
            "--nouncached",
            "--intra_op_threads=1",
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(result["intra_op_threads"], 1)
        self.assertNotIn("speedup_vs_uncached", result)  # --nouncached skips the baseline


class _Capture:
    """Captures stdout (the benchmark prints its JSON there)."""

    def __enter__(self):
        import contextlib
        import io

        self._buf = io.StringIO()
        self._ctx = contextlib.redirect_stdout(self._buf)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        self.text = self._buf.getvalue()


if __name__ == "__main__":
    tf.test.main()
