"""Benchmark statistics: a world compared with itself, and values by hand."""

import numpy as np

from motion_sim.planning import scores
from tests.fixtures.testcase import TestCase


class ScoresTest(TestCase):
    def test_world_against_itself_is_perfect(self):
        rng = np.random.default_rng(0)
        returns = rng.normal(size=(12, 64))  # 12 scenes x 64 planners
        stats = scores.compare_with_bootstrap(returns, returns, num_samples=50)
        self.assertAllClose(stats["spearman"]["value"], 1.0)
        for k in ("mae", "regret@1", "regret@5"):
            self.assertEqual(stats[k]["value"], 0.0)
            self.assertEqual(stats[k]["std"], 0.0)
        self.assertAllClose(stats["spearman"]["std"], 0.0, atol=1e-12)

    def test_by_hand(self):
        truth = np.array([0.0, 1.0, 2.0, 4.0])  # min 0, max 4: normalised = x / 4
        est = np.array([4.0, 0.0, 1.0, 2.0])  # ranks the truly worst planner first
        out = scores.compare(est, truth, ks=(1, 2))
        # ranks est (4, 1, 2, 3) vs truth (1, 2, 3, 4): d = (3, -1, -1, -1), sum d^2 = 12,
        # rho = 1 - 6 * 12 / (4 * 15) = -0.2
        self.assertAllClose(out["spearman"], -0.2)
        self.assertAllClose(out["mae"], np.mean(np.abs(est - truth)) / 4)  # (4+1+1+2)/4/4
        self.assertAllClose(out["regret@1"], 1.0)  # picks planner 0 (true 0 of best 4)
        # top-2 by estimate: planners 0 (4.0) and 3 (2.0); planner 3 is truly best.
        self.assertAllClose(out["regret@2"], 0.0)
