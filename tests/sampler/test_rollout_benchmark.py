"""The rollout benchmark: analytic FLOP count by hand, scene padding, and one tiny end-to-end run."""
import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from motion_sim.benchmarks import rollout
from tests.policy_fixtures import GIN_DIR, REPO, tiny_model
from tests.test_case import TestCase


def _mm(m, k, n):
    return 2.0 * m * k * n


# Encoding the test scene (A=3 agents, P=1 polyline of L=2 points, TL=1 light, N=4 tokens) with
# the tiny config (D=32, F=64, W=32, 1 encoder layer), matmul by matmul.
_TINY_ENCODER_FLOPS = (_mm(3, 85, 32) + _mm(3, 32, 32) + _mm(3, 32, 32)  # agent history MLP
                       + _mm(2, 5, 32) + _mm(2, 32, 32) + _mm(2, 64, 32) + _mm(2, 32, 32)
                       + _mm(1, 2, 32) + _mm(1, 32, 32)  # PointNet, traffic light
                       + 4 * _mm(4, 32, 32) + 2 * _mm(4, 4, 32) + 2 * _mm(4, 32, 64))


class RolloutBenchmarkTest(TestCase):

    def test_scene_has_exactly_the_requested_valid_agents(self):
        scene = rollout._scene(rollout._SAMPLE, 70)
        self.assertEqual(scene["agent_xy"].shape, (1, 70, 91, 2))
        self.assertEqual(int(scene["agent_mask"].sum()), 70)
        self.assertEqual(scene["agent_xy"].dtype, np.float32)
        now = scene["agent_xy"][0, :, 10]
        gaps = np.linalg.norm(now[:, None] - now[None], axis=-1) + np.eye(70) * 1e3
        self.assertGreater(gaps.min(), 0.0)  # copies are shifted, no two agents coincide

    def test_flops_by_hand(self):
        model = tiny_model()  # D=32, F=64, W=32, 1 encoder + 2 decoder layers, V=169
        B, R, A, T, N, P, L, TL = 1, 2, 3, 2, 4, 1, 2, 1
        mm, enc = _mm, _TINY_ENCODER_FLOPS
        def step(q):  # decoder rows q: 2 layers of projections, cross-attention, FFN + logits
            return 2 * (6 * mm(q, 32, 32) + 2 * mm(q, 4, 32) + 2 * mm(q, 32, 64)) + mm(q, 32, 169)
        # Step 0 runs once per scene (A=3 rows), step 1 per rollout (R*A=6 rows). T=2 -> 2
        # buckets of one step: step 0 reads 1*A keys, step 1 reads 2*A keys.
        self_attn = 2 * 2 * (mm(3, 1, 32) * 3 + mm(6, 1, 32) * 6)
        once = 2 * 2 * mm(4, 32, 32) + mm(3, 14, 32) + mm(3, 32, 32)
        self.assertEqual(rollout.rollout_flops(model, B, R, A, T, N, P, L, TL),
                         enc + once + step(3) + step(6) + self_attn)

    def test_uncached_flops_by_hand(self):
        model = tiny_model()  # D=32, F=64, W=32, 1 encoder + 2 decoder layers, V=169
        B, R, A, T, N, P, L, TL = 1, 2, 3, 2, 4, 1, 2, 1
        mm, enc = _mm, _TINY_ENCODER_FLOPS
        identity = mm(3, 14, 32) + mm(3, 32, 32)

        def rows(q):  # the decoder over q rows (2 layers) + logits
            return 2 * (6 * mm(q, 32, 32) + 2 * mm(q, 4, 32) + 2 * mm(q, 32, 64)) + mm(q, 32, 169)

        scene_kv = 2 * 2 * mm(R * N, 32, 32)  # every step, both layers, tiled R times
        # Step 0: one step of 3 agents, one chunk. Step 1: two steps -> two one-step chunks,
        # the first reads 3 keys, the second 6.
        step0 = rows(6) + scene_kv + 2 * 2 * mm(6, 32, 3)
        step1 = rows(12) + scene_kv + 2 * 2 * (mm(6, 32, 3) + mm(6, 32, 6))
        self.assertEqual(rollout.uncached_rollout_flops(model, B, R, A, T, N, P, L, TL),
                         enc + identity + step0 + step1)

    @pytest.mark.slow
    def test_end_to_end_tiny(self):
        if not rollout.FLAGS.is_parsed():
            rollout.FLAGS.mark_as_parsed()  # pytest does not run absl's flag parsing
        self.addCleanup(gin.clear_config)  # the benchmark binds gin globally
        with flagsaver.flagsaver(gin_file=[f"{GIN_DIR}/model_tiny.gin"], agents=4, rollouts=2,
                                 repeats=1):
            with _Capture() as out:
                rollout.main([])
        result = json.loads(out.text.strip().splitlines()[-1])
        for key in ("params", "seconds_per_scenario", "tokens_per_second", "achieved_gflops",
                    "matmul_gflops", "roofline_ratio", "speedup_vs_uncached", "peak_memory_gb",
                    "flop_ratio_vs_uncached"):
            self.assertGreater(result[key], 0, key)
        self.assertEqual(result["trace_count"], 1)
        self.assertEqual(result["intra_op_threads"], 0)  # TF's default pool unless asked

    @pytest.mark.slow
    def test_intra_op_threads_flag_reaches_tf(self):
        # A fresh process: TF fixes its thread pools when it starts.
        cmd = [sys.executable, "-m", "motion_sim.benchmarks.rollout",
               f"--gin_file={GIN_DIR}/model_tiny.gin", "--agents=4", "--rollouts=2",
               "--repeats=1", "--nouncached", "--intra_op_threads=1"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
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
