"""`rollout_eval.rollout_metrics`: which agents each collision rate counts."""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf

from motion_sim.rl import rollout_eval
from tests.fixtures.testcase import TestCase

_Rollout = collections.namedtuple("_Rollout", "xy heading")


def _scene_and_rollout():
    """4 real agents + 1 padded slot, one rollout standing still: agents 2 and 3 overlap each
    other, agents 0 (the SDC) and 1 (a track to predict) are alone."""
    x = np.array([0.0, 50.0, 100.0, 101.0, 100.5], np.float32)  # slot 4 padded, on top of 2, 3
    A = len(x)
    xy = np.zeros([1, 1, A, 80, 2], np.float32)
    xy[..., 0] = x[None, None, :, None]
    scene = {
        "agent_mask": tf.constant([[True, True, True, True, False]]),
        "agent_size": tf.constant(np.tile([[4.0, 2.0, 1.5]], [1, A, 1]).astype(np.float32)),
        "agent_xy": tf.constant(np.repeat(xy[:, 0, :, :1], 91, axis=2)),
        "agent_valid": tf.ones([1, A, 91], tf.bool),
        "tracks_to_predict": tf.constant([[False, True, False, False, False]]),
        "sdc_index": tf.constant([0]),
    }
    return scene, _Rollout(tf.constant(xy), tf.zeros([1, 1, A, 80]))


class RolloutMetricsTest(TestCase):
    def test_all_agent_and_evaluated_agent_rates(self):
        scene, rollout = _scene_and_rollout()
        m = rollout_eval.rollout_metrics(rollout, scene)
        self.assertEqual((m["collided"], m["agents"]), (2.0, 4.0))  # padded slot not counted
        self.assertEqual((m["collided_evaluated"], m["evaluated"]), (0.0, 2.0))

    def test_evaluated_agent_that_collides(self):
        scene, rollout = _scene_and_rollout()
        scene["tracks_to_predict"] = tf.constant([[False, False, True, False, True]])
        m = rollout_eval.rollout_metrics(rollout, scene)
        # SDC + agent 2 evaluated; agent 2 collides; the padded slot 4 is no evaluated agent.
        self.assertEqual((m["collided_evaluated"], m["evaluated"]), (1.0, 2.0))


if __name__ == "__main__":
    tf.test.main()
