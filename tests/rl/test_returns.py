"""Reward-to-go and normalisation against hand-worked values."""

import numpy as np
import tensorflow as tf

from motion_sim.rl import returns


class ReturnsTest(tf.test.TestCase):
    def test_reward_to_go_hand_worked(self):
        # gamma 0.5: G2 = 3, G1 = 2 + 0.5*3 = 3.5, G0 = 1 + 0.5*3.5 = 2.75
        r = tf.constant([[1.0, 2.0, 3.0], [0.0, 0.0, -4.0]])
        g = returns.reward_to_go(r, 0.5)
        self.assertAllClose(g, [[2.75, 3.5, 3.0], [-1.0, -2.0, -4.0]])

    def test_reward_to_go_keeps_leading_shape(self):
        r = tf.ones([2, 3, 4, 5])
        g = returns.reward_to_go(r, 0.95)
        self.assertEqual(g.shape, (2, 3, 4, 5))
        self.assertAllClose(g[..., 0], tf.fill([2, 3, 4], sum(0.95**k for k in range(5))))

    def test_global_normalisation_ignores_invalid(self):
        g = tf.constant([1.0, 2.0, 3.0, 100.0])
        valid = tf.constant([True, True, True, False])
        out, stats = returns.normalize_global(g, valid)
        std = np.sqrt(2.0 / 3.0)  # population std of 1, 2, 3
        self.assertAllClose(stats.mean, 2.0)
        self.assertAllClose(stats.std, std)
        self.assertAllClose(stats.count, 3.0)
        self.assertAllClose(out, [-1.0 / std, 0.0, 1.0 / std, 0.0], atol=1e-5)

    def test_group_normalisation_per_scenario_agent_step(self):
        # [B=2, R=2, A=1, T=2]; scenario 0 rollouts 1 and 3 at step 0 -> -1, +1.
        g = tf.constant([[[[1.0, 5.0]], [[3.0, 5.0]]], [[[10.0, 0.0]], [[20.0, 7.0]]]])
        valid = tf.constant([[[[True, True]], [[True, True]]], [[[True, True]], [[True, False]]]])
        out = returns.normalize_group(g, valid)
        self.assertAllClose(out[0, :, 0, 0], [-1.0, 1.0], atol=1e-5)
        self.assertAllClose(out[0, :, 0, 1], [0.0, 0.0])  # identical returns: no signal
        self.assertAllClose(out[1, :, 0, 0], [-1.0, 1.0], atol=1e-5)
        self.assertAllClose(out[1, :, 0, 1], [0.0, 0.0])  # one valid rollout: no baseline
