"""`fast_interaction`: the pruned nearest-object search and time to collision equal their
brute-force forms on crowded, partly invalid scenes (where pruning is hardest)."""

import numpy as np
import tensorflow as tf

from motion_sim.metrics import fast_interaction
from motion_sim.metrics.pruned_search import BIG


def _scene(seed, num_agents=64, num_steps=60):
    """Time-major boxes: a fast agent passing a row of parked cars (the nearest one changes
    every few steps, and more of them than NEAREST_CHUNK_OBJECTS are close over a chunk),
    traffic both ways, a far agent, padding agents, and objects that appear and vanish."""
    rng = np.random.default_rng(seed)
    xy = np.zeros((num_steps, num_agents, 2), np.float32)
    heading = np.zeros((num_steps, num_agents), np.float32)
    t = np.arange(num_steps, dtype=np.float32)[:, None] * 0.1
    xy[:, 0, 0] = -50.0 + 25.0 * t[:, 0]  # agent 0: 25 m/s along y = 0
    parked = slice(1, 34)
    xy[:, parked, 0] = np.arange(-40.0, 42.5, 2.5)[:33] + rng.normal(0, 0.2, 33)
    xy[:, parked, 1] = 3.0 + rng.normal(0, 0.3, 33)
    heading[:, parked] = rng.normal(0, 0.3, (1, 33))
    movers = slice(34, 52)
    speed = rng.uniform(-25, 25, (1, 18))
    xy[:, movers, 0] = rng.uniform(-60, 60, (1, 18)) + speed * t
    xy[:, movers, 1] = rng.choice([-3.5, -7.0], (1, 18))
    heading[:, movers] = np.where(speed < 0, np.pi, 0.0)
    xy[:, 52] = [5000.0, -3000.0]  # far away
    valid = np.ones((num_steps, num_agents), bool)
    valid[:, 53:] = False  # padding
    valid[:, 2:] &= rng.uniform(size=(num_steps, num_agents - 2)) > 0.15  # appear and vanish
    valid[:15, 1] = False  # an evaluated agent invalid for a while (mid-chunk)
    size = np.tile([[4.5, 2.0, 1.5]], (num_agents, 1)).astype(np.float32)
    size[parked, :2] = rng.uniform([3.5, 1.6], [5.0, 2.2], (33, 2))
    return xy, heading, valid, size


def _brute_nearest(e, boxes):
    num_steps, num_agents = boxes.valid.shape
    every = tf.broadcast_to(tf.range(num_agents), [num_steps, num_agents])
    all_corners = fast_interaction.corners(boxes, every)
    eval_corners = fast_interaction.corners(boxes, tf.fill([num_steps, 1], e))[:, 0]
    d = fast_interaction._box_distances(
        eval_corners,
        all_corners,
        tf.gather(boxes.shrink, e),
        tf.broadcast_to(boxes.shrink, [num_steps, num_agents]),
    )
    ok = boxes.valid & boxes.valid[:, e : e + 1] & (np.arange(num_agents) != e)[None]
    return tf.reduce_min(tf.where(ok, d, BIG), axis=-1)


def test_nearest_object_equals_brute_force_on_crowded_partly_invalid_scenes():
    for seed in range(3):
        xy, heading, valid, size = _scene(seed)
        boxes = fast_interaction.object_boxes(
            tf.constant(xy),
            tf.cos(tf.constant(heading)),
            tf.sin(tf.constant(heading)),
            tf.constant(valid),
            tf.constant(size),
        )
        search = tf.function(fast_interaction.distance_to_nearest_object, jit_compile=True)
        for e in (0, 1, 10, 40, 52):
            fast, fallbacks = search(tf.constant(e), boxes)
            np.testing.assert_allclose(fast.numpy(), _brute_nearest(e, boxes).numpy(), atol=1e-5)
        # Steps where the evaluated agent is invalid settle at 1e10 without a brute-force pass.
        fast, fallbacks = search(tf.constant(1), boxes)
        assert (fast.numpy()[:15] == BIG).all()
        assert int(fallbacks) == 0


def test_time_to_collision_picks_the_official_first_minimum_on_ties():
    # Two objects exactly as far ahead of the evaluated agent, at different speeds: the official
    # tf.argmin takes the first, so the slower one (index 1) sets the collision time.
    xy = np.array([[[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [30.0, 0.0]]], np.float32)
    yaw = np.zeros((1, 4), np.float32)
    speed = np.array([[10.0, 2.0, 8.0, 0.0]], np.float32)
    size = np.tile([[4.0, 2.0, 1.5]], (4, 1)).astype(np.float32)
    frame = fast_interaction.ttc_frame(
        tf.constant(xy),
        tf.constant(yaw),
        tf.cos(tf.constant(yaw)),
        tf.sin(tf.constant(yaw)),
        tf.constant(speed),
        tf.ones([1, 4], tf.bool),
        tf.constant(size),
    )
    ttc = tf.function(fast_interaction.time_to_collision, jit_compile=True)(tf.constant(0), frame)
    # long distance 10 - 2 - 2 = 6 m, closing at 10 - 2 = 8 m/s.
    np.testing.assert_allclose(ttc.numpy(), [6.0 / 8.0], rtol=1e-6)
