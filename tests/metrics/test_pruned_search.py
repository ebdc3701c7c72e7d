"""`pruned_search`: k-smallest selection, slot packing and the exactness bound of group search."""

import numpy as np
import tensorflow as tf

from motion_sim.metrics import pruned_search


def test_select_smallest_picks_k_smallest_and_the_next_value():
    lower = tf.constant([[5.0, 1.0, 4.0, 2.0, 3.0], [0.5, 9.0, 0.1, 7.0, 8.0]])
    picked, rest = pruned_search.select_smallest(lower, 2)
    np.testing.assert_array_equal(picked.numpy(), [[1, 3], [2, 0]])
    np.testing.assert_allclose(rest.numpy(), [3.0, 7.0])


def test_fill_misses_recomputes_exactly_the_flagged_entries_in_slabs():
    values = tf.zeros([11], tf.int32)
    miss = tf.constant([i % 3 == 0 for i in range(11)])  # 4 misses, slab 3: two loop passes
    calls = []

    def compute(index):
        calls.append(index)
        return index * 10 + 1, index < 6  # entries 6 and 9 stay unsettled

    out, unsettled, total = pruned_search.fill_misses(miss, values, compute, 3)
    np.testing.assert_array_equal(out.numpy(), [1, 0, 0, 31, 0, 0, 61, 0, 0, 91, 0])
    np.testing.assert_array_equal(np.nonzero(unsettled.numpy())[0], [6, 9])
    assert int(total) == 4
    _, unsettled, total = pruned_search.fill_misses(
        tf.zeros([5], tf.bool), tf.zeros([5]), lambda i: (tf.zeros([2]), i < 0), 2
    )
    assert int(total) == 0 and not unsettled.numpy().any()


def test_group_bound_is_below_every_left_out_group():
    rng = np.random.default_rng(0)
    lo = rng.uniform(-100, 100, size=(40, 2)).astype(np.float32)
    boxes = np.concatenate([lo, lo + rng.uniform(1, 10, size=(40, 2)).astype(np.float32)], -1)
    points = rng.uniform(-100, 100, size=(30, 2)).astype(np.float32)
    lower = pruned_search.box_distance(tf.constant(points)[:, tf.newaxis], tf.constant(boxes))
    groups, bound = pruned_search.select_smallest(lower, 5)
    # Brute force: distance from each point to each box.
    d = np.hypot(
        np.maximum(
            np.maximum(
                boxes[None, :, 0] - points[:, None, 0], points[:, None, 0] - boxes[None, :, 2]
            ),
            0,
        ),
        np.maximum(
            np.maximum(
                boxes[None, :, 1] - points[:, None, 1], points[:, None, 1] - boxes[None, :, 3]
            ),
            0,
        ),
    )
    for q in range(len(points)):
        kept = set(groups.numpy()[q])
        np.testing.assert_allclose(sorted(d[q, list(kept)]), np.sort(d[q])[:5], rtol=1e-5)
        left_out = [g for g in range(len(boxes)) if g not in kept]
        assert bound.numpy()[q] <= d[q, left_out].min() + 1e-4


def test_select_smallest_orders_negative_values_and_bounds_the_rest_exactly():
    # Keys are the floats' order-preserving bits: negative values must sort below positive ones,
    # and the returned bound is the exact minimum of what was left out (not a rounded key).
    rng = np.random.default_rng(1)
    lower = rng.normal(0, 50, size=(64, 300)).astype(np.float32)
    lower[:, 7] = -1e10
    lower[:, 9] = 1e10
    picked, rest = pruned_search.select_smallest(tf.constant(lower), 6)
    picked = picked.numpy()
    for q in range(len(lower)):
        assert picked[q, 0] == 7
        left_out = np.delete(lower[q], picked[q])
        assert rest.numpy()[q] == left_out.min()
        # Keys drop ceil(log2(300)) = 9 low bits: a relative 2^-14 of reordering at most.
        assert lower[q, picked[q]].max() <= left_out.min() + abs(left_out.min()) * 2**-14


def test_running_count_equals_cumsum():
    rng = np.random.default_rng(2)
    for num in (1, 63, 64, 65, 2640):
        flags = rng.uniform(size=num) < 0.3
        np.testing.assert_array_equal(
            pruned_search._running_count(tf.constant(flags)).numpy(), np.cumsum(flags)
        )
