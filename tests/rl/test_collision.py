"""Oriented-box overlap: hand-worked cases (incl. rotated boxes) and a cross-check with waymo."""

import math

import numpy as np
import tensorflow as tf
from waymo_open_dataset.wdl_limited.sim_agents_metrics import interaction_features

from motion_sim.rl import collision


def _overlap(xy, heading, length, width, valid=None):
    xy = tf.constant(xy, tf.float32)
    heading = tf.constant(heading, tf.float32)
    valid = tf.ones(heading.shape, tf.bool) if valid is None else tf.constant(valid)
    return collision.pairwise_overlap(
        xy, heading, tf.constant(length, tf.float32), tf.constant(width, tf.float32), valid
    ).numpy()


class CollisionTest(tf.test.TestCase):
    def test_axis_aligned_touching_and_apart(self):
        # Two 4 x 2 boxes along x: centres 3.9 m apart overlap, 4.1 m apart do not.
        near = _overlap([[0, 0], [3.9, 0]], [0, 0], [4, 4], [2, 2])
        far = _overlap([[0, 0], [4.1, 0]], [0, 0], [4, 4], [2, 2])
        self.assertTrue(near[0, 1] and near[1, 0])
        self.assertFalse(far.any())
        # Side by side: 1.9 m apart laterally overlap (width 2), 2.1 m do not.
        self.assertTrue(_overlap([[0, 0], [0, 1.9]], [0, 0], [4, 4], [2, 2])[0, 1])
        self.assertFalse(_overlap([[0, 0], [0, 2.1]], [0, 0], [4, 4], [2, 2])[0, 1])

    def test_rotated_boxes_where_bounding_boxes_would_lie(self):
        # Two 2 x 2 squares turned 45 deg, offset diagonally by (1.6, 1.6): 2.26 m apart along
        # their shared axis (> 2, disjoint) although their axis-aligned hulls overlap.
        q = math.pi / 4
        self.assertFalse(_overlap([[0, 0], [1.6, 1.6]], [q, q], [2, 2], [2, 2])[0, 1])
        self.assertTrue(_overlap([[0, 0], [1.3, 1.3]], [q, q], [2, 2], [2, 2])[0, 1])
        # Axis-aligned square vs diamond on the x axis: diamond's corner reaches x = c - sqrt(2).
        self.assertTrue(_overlap([[0, 0], [2.3, 0]], [0, q], [2, 2], [2, 2])[0, 1])
        self.assertFalse(_overlap([[0, 0], [2.5, 0]], [0, q], [2, 2], [2, 2])[0, 1])
        # A long truck crossing at 90 deg: its length lies along y.
        self.assertTrue(_overlap([[0, 0], [0, 4.5]], [0, math.pi / 2], [4, 10], [2, 2])[0, 1])
        self.assertFalse(_overlap([[0, 0], [0, 6.5]], [0, math.pi / 2], [4, 10], [2, 2])[0, 1])

    def test_self_pairs_and_padding_excluded(self):
        out = _overlap(
            [[0, 0], [0.5, 0], [0.2, 0]], [0, 0, 0], [4, 4, 4], [2, 2, 2], valid=[True, True, False]
        )
        self.assertFalse(np.diag(out).any())
        self.assertTrue(out[0, 1])
        self.assertFalse(out[2].any() or out[:, 2].any())  # padded agent on top of both
        hit = collision.any_collision(
            tf.constant([[0.0, 0], [0.5, 0], [0.2, 0]]),
            tf.zeros([3]),
            4.0,
            2.0,
            tf.constant([True, False, True]),
        ).numpy()
        self.assertAllEqual(hit, [True, False, True])

    def test_matches_waymo_distance_on_random_boxes(self):
        rng = np.random.default_rng(0)
        n, steps = 12, 40
        xy = rng.uniform(-8, 8, size=(n, steps, 2)).astype(np.float32)
        heading = rng.uniform(-np.pi, np.pi, size=(n, steps)).astype(np.float32)
        length = rng.uniform(1, 6, size=(n, 1)).astype(np.float32) * np.ones((1, steps), np.float32)
        width = rng.uniform(0.5, 2.5, size=(n, 1)).astype(np.float32) * np.ones(
            (1, steps), np.float32
        )
        dist = interaction_features.compute_distance_to_nearest_object(
            center_x=tf.constant(xy[..., 0]),
            center_y=tf.constant(xy[..., 1]),
            center_z=tf.zeros([n, steps]),
            length=tf.constant(length),
            width=tf.constant(width),
            height=tf.ones([n, steps]),
            heading=tf.constant(heading),
            valid=tf.ones([n, steps], tf.bool),
            evaluated_object_mask=tf.ones([n], tf.bool),
            corner_rounding_factor=0.0,
        ).numpy()
        ours = (
            collision.any_collision(
                tf.constant(np.transpose(xy, [1, 0, 2])),
                tf.constant(heading.T),
                tf.constant(length.T),
                tf.constant(width.T),
                tf.ones([steps, n], tf.bool),
            )
            .numpy()
            .T
        )  # [n, steps]
        clear = np.abs(dist) > 1e-3  # skip numerically touching pairs
        self.assertGreater((ours & clear).sum(), 20)  # the case mix has real collisions
        self.assertGreater((~ours & clear).sum(), 20)
        np.testing.assert_array_equal(ours[clear], (dist < 0)[clear])
