"""`pruned_search`: k-smallest selection, slot packing and the exactness bound of group search."""
import numpy as np
import tensorflow as tf

from motion_sim.metrics import pruned_search


def test_select_smallest_picks_k_smallest_and_the_next_value():
  lower = tf.constant([[5.0, 1.0, 4.0, 2.0, 3.0], [0.5, 9.0, 0.1, 7.0, 8.0]])
  picked, rest = pruned_search.select_smallest(lower, 2)
  np.testing.assert_array_equal(picked.numpy(), [[1, 3], [2, 0]])
  np.testing.assert_allclose(rest.numpy(), [3.0, 7.0])


def test_compact_packs_true_entries_and_flags_overflow():
  flags = tf.constant([False, True, False, True, True, False])
  index, used, fits = pruned_search.compact(flags, 4)
  np.testing.assert_array_equal(index.numpy()[used.numpy()], [1, 3, 4])
  np.testing.assert_array_equal(used.numpy(), [True, True, True, False])
  assert bool(fits)
  _, used, fits = pruned_search.compact(flags, 2)
  assert not bool(fits) and used.numpy().all()


def test_group_bound_is_below_every_left_out_group():
  rng = np.random.default_rng(0)
  lo = rng.uniform(-100, 100, size=(40, 2)).astype(np.float32)
  boxes = np.concatenate([lo, lo + rng.uniform(1, 10, size=(40, 2)).astype(np.float32)], -1)
  points = rng.uniform(-100, 100, size=(30, 2)).astype(np.float32)
  groups, bound = pruned_search.nearest_groups_of_points(tf.constant(points), tf.constant(boxes), 5)
  # Brute force: distance from each point to each box.
  d = np.hypot(np.maximum(np.maximum(boxes[None, :, 0] - points[:, None, 0],
                                     points[:, None, 0] - boxes[None, :, 2]), 0),
               np.maximum(np.maximum(boxes[None, :, 1] - points[:, None, 1],
                                     points[:, None, 1] - boxes[None, :, 3]), 0))
  for q in range(len(points)):
    kept = set(groups.numpy()[q])
    np.testing.assert_allclose(sorted(d[q, list(kept)]), np.sort(d[q])[:5], rtol=1e-5)
    left_out = [g for g in range(len(boxes)) if g not in kept]
    assert bound.numpy()[q] <= d[q, left_out].min() + 1e-4
