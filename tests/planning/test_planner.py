"""Candidate library, bicycle and the random-shooting planner on constructed scenes."""

import numpy as np

from motion_sim.planning import candidates
from motion_sim.planning.bicycle import bicycle_rollout
from motion_sim.planning.planner import RandomShootingPlanner
from motion_sim.planning.route import LoggedPath
from tests.fixtures.testcase import TestCase


def _straight_path():
    return LoggedPath.from_log(
        np.stack([np.linspace(-10, 80, 91), np.zeros(91)], -1), np.ones(91, bool)
    )


class CandidatesTest(TestCase):
    def test_library_order_and_planners(self):
        lib = candidates.library()
        self.assertLen(lib.curvature, 81)
        self.assertLen(set(zip(lib.curvature.tolist(), lib.accel.tolist())), 81)
        core = set(zip(lib.curvature[:9].tolist(), lib.accel[:9].tolist()))
        want = {(k, a) for k in (-0.01, 0.0, 0.01) for a in (-1.0, 0.0, 1.0)}
        self.assertEqual({(round(k, 4), a) for k, a in core}, want)
        self.assertEqual((lib.curvature[0], lib.accel[0]), (0.0, 0.0))
        self.assertLessEqual(np.abs(lib.curvature).max(), np.float32(0.3))
        self.assertLessEqual(np.abs(lib.accel).max(), 6.0)
        ps = candidates.planner_set()
        self.assertLen(ps.names, 64)
        self.assertLen(set(ps.names), 64)
        self.assertEqual(sorted(set(ps.num_candidates.tolist()))[0], 9)
        self.assertEqual(sorted(set(ps.num_candidates.tolist()))[-1], 81)
        self.assertLen(set(ps.num_candidates.tolist()), 16)
        self.assertEqual(sorted(set(ps.horizon.tolist())), [6, 8, 12, 16])

    def test_bicycle(self):
        # 10 m/s, curvature 0.1 for pi s: half a circle of radius 10 (to 2nd order per step).
        steps = 314
        out = bicycle_rollout(np.array([0.0, 0.0, 0.0, 10.0], np.float32), 0.1, 0.0, steps, 0.01)
        self.assertAllClose(out[-1, :2], [0.0, 20.0], atol=0.05)
        self.assertAllClose(out[-1, 2], np.pi, atol=0.01)
        # Braking stops the car and never reverses it; limits are clipped.
        out = bicycle_rollout(np.array([0.0, 0.0, 0.0, 2.0], np.float32), 0.0, -20.0, 10, 0.1)
        self.assertAllClose(out[:, 3], [1.4, 0.8, 0.2] + [0.0] * 7, atol=1e-6)
        self.assertGreaterEqual(float(out[-1, 0]), 0.0)


class PlannerTest(TestCase):
    def test_avoids_a_forecast_collision_and_ties_go_first(self):
        planner = RandomShootingPlanner()
        path = _straight_path()
        av = np.array([[0.0, 0.0, 0.0, 10.0]] * 2, np.float32)
        size = np.array([4.0, 2.0], np.float32)
        # World 0: nothing around -> every in-route candidate ties on C and R; progress (1e-4
        # per m) prefers the fastest straight one among the 9: curvature 0, accel +1.
        # World 1: a stopped car 30 m ahead. In 3 s keeping speed covers 30 m (hits it),
        # braking at 1 m/s^2 covers 25.5 m (front at 27.5 m < its rear at 28 m): the only
        # candidates without a collision brake, and of those curvature 0 stays on the path.
        o_xy = np.array([[[500.0, 500.0]], [[30.0, 0.0]]], np.float32)
        o_vel = np.zeros((2, 1, 2), np.float32)
        o_heading = np.zeros((2, 1), np.float32)
        o_valid = np.array([[False], [True]])
        lib = candidates.library()
        executed, choice = planner.plan(
            av,
            size,
            o_xy,
            o_vel,
            o_heading,
            np.array([[4.0, 2.0]], np.float32),
            o_valid,
            [9, 9],
            [6, 6],
            path,
        )
        self.assertEqual((lib.curvature[choice[0]], lib.accel[choice[0]]), (0.0, 1.0))
        self.assertEqual((lib.curvature[choice[1]], lib.accel[choice[1]]), (0.0, -1.0))
        self.assertEqual(executed.shape, (2, 5, 4))
        near = planner.nearest_objects(
            av, o_xy, o_vel, o_heading, np.array([[4.0, 2.0]], np.float32), o_valid
        )
        self.assertAllEqual(near[-1][:, 0], [False, True])
        self.assertAllEqual(near[-1][:, 1:], np.zeros((2, 31), bool))  # padding
        scores = planner.scores(av, size, *near, np.array([81, 9]), np.array([6, 6]), path)
        self.assertEqual(int(np.sum(scores[1] > -1e8)), 9)
        self.assertGreaterEqual(float(np.max(scores[0])), float(np.max(scores[1])))
        self.assertEqual(planner.trace_count, 1)
