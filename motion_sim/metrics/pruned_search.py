"""Exact nearest-segment search pruned by bounding boxes, with static shapes for XLA.

Map segments come in groups (`scenario_arrays.GROUP_SIZE` consecutive segments) with bounding
boxes. Query points are narrowed to a few groups per point in levels (chunks of steps, then
steps); each level also returns a lower bound on the score of everything it left out, so the
caller can check that the best candidate found is the true minimum. k-smallest selection is k
passes of argmin (linear in the number of groups, unlike XLA's CPU sort / top-k), and the
queries a search leaves unsettled are searched again in fixed-size slabs by a loop
(`fill_misses`): the work grows with the misses, the compiled shape does not.
"""

from __future__ import annotations

import tensorflow as tf

STEPS_PER_CHUNK = 10  # steps of one agent (and sample) searched together at the chunk levels
BIG = 1e10  # the official EXTREMELY_LARGE_DISTANCE: the score of what cannot match
# Exactness is checked on every call (the best score found must beat the bound of every other
# candidate); a miss is scored against every segment / object instead, in slabs of
# FALLBACK_SLAB queries inside the same compiled call (no retry, no new shape).
FALLBACK_SLAB = 32
PRUNE_MARGIN = 1e-3  # metres of slack for float32 rounding in the search bounds
_FAR = 1e10  # masks what a selection pass already took
UNROLL = 32  # select_smallest unrolls up to this many passes, loops beyond


def chunk_bounds(points):
    """Centre [..., 2] and xy radius [...] of each group of points [..., P, >=2]."""
    centre = tf.reduce_mean(points[..., :2], axis=-2)
    radius = tf.reduce_max(tf.norm(points[..., :2] - centre[..., tf.newaxis, :], axis=-1), axis=-1)
    return centre, radius


def box_distance(centre, box):
    """2-D distance from points [..., 1, 2] to boxes [G, 4] (xmin, ymin, xmax, ymax) -> [..., G]."""
    dx = tf.maximum(tf.maximum(box[:, 0] - centre[..., 0], centre[..., 0] - box[:, 2]), 0.0)
    dy = tf.maximum(tf.maximum(box[:, 1] - centre[..., 1], centre[..., 1] - box[:, 3]), 0.0)
    return tf.sqrt(dx * dx + dy * dy)


def select_smallest(lower, k):
    """(indices [..., k] of k of the smallest of lower [..., G], smallest value left out [...]).

    k passes of a plain int32 min over one key per entry: the float's order-preserving bits with
    the low ceil(log2 G) bits replaced by the entry's index, so one min gives the value and
    where it is. XLA's CPU argmin (a two-operand reduction) runs ~4x slower, and sort / top-k
    slower still. Dropping those low bits rounds each value down by a relative 2^(b - 23), so
    entries that close may be picked out of order; the returned value is the exact minimum of
    what was left out, which is all the exactness checks of the callers rely on.
    """
    num = lower.shape[-1]
    bits = max(1, (num - 1).bit_length())
    raw = tf.bitcast(lower, tf.int32)
    # Negative floats order backwards as ints: flipping their magnitude bits fixes that.
    ordered = tf.where(raw < 0, tf.bitwise.bitwise_xor(raw, tf.constant(0x7FFFFFFF)), raw)
    key = tf.bitwise.bitwise_or(
        tf.bitwise.bitwise_and(ordered, tf.constant(-(1 << bits))), tf.range(num)
    )
    taken = tf.constant(tf.int32.max)
    k = min(k, num)
    if k <= UNROLL:
        picked = []
        for _ in range(k):
            best = tf.reduce_min(key, axis=-1, keepdims=True)
            picked.append(tf.bitwise.bitwise_and(best[..., 0], tf.constant((1 << bits) - 1)))
            key = tf.where(tf.equal(key, best), taken, key)
        picked = tf.stack(picked, axis=-1)
    else:
        # A loop, not k unrolled passes: the same work, a much smaller program to compile.
        column = tf.range(k)

        def body(i, key, picked):
            best = tf.reduce_min(key, axis=-1, keepdims=True)
            index = tf.bitwise.bitwise_and(best, tf.constant((1 << bits) - 1))
            picked = tf.where(tf.equal(column, i), index, picked)
            return i + 1, tf.where(tf.equal(key, best), taken, key), picked

        _, key, picked = tf.while_loop(
            lambda i, *_: i < k,
            body,
            (tf.constant(0), key, tf.zeros(lower.shape[:-1].as_list() + [k], tf.int32)),
        )
    rest = tf.reduce_min(tf.where(tf.equal(key, taken), _FAR, lower), axis=-1)
    return picked, rest


def box_distance_batched(centre, boxes):
    """2-D distance from points [..., 2] to boxes [..., K, 4] -> [..., K]."""
    x, y = centre[..., 0:1], centre[..., 1:2]
    dx = tf.maximum(tf.maximum(boxes[..., 0] - x, x - boxes[..., 2]), 0.0)
    dy = tf.maximum(tf.maximum(boxes[..., 1] - y, y - boxes[..., 3]), 0.0)
    return tf.sqrt(dx * dx + dy * dy)


def nearest_groups(points, group_box, budget, num_samples=1):
    """Segment groups to score for each step, chosen in three levels, and the exactness bound.

    Level 0 keeps the groups nearest to each chunk (STEPS_PER_CHUNK steps) of one agent over
    all its samples (rollouts stay near each other, so one search serves them all), level 1
    the nearest of those to each sample's chunk, level 2 the nearest of those to each step. A
    group left out at any level cannot hold a segment scoring below the returned bound for
    any point of that step.

    Args:
      points: [N, T, P, >=2] query points (P per step), N = num_samples * E rows, sample-major.
      group_box: [G, 4] group bounding boxes.
      budget: (k0, k1, k2) groups kept per level.
      num_samples: S.

    Returns:
      ([N, T, k2] group indices, [N, T] lower bound on any score outside them).
    """
    n, t, p = points.shape[:3]
    e, c = n // num_samples, t // STEPS_PER_CHUNK
    chunks = tf.reshape(points[..., :2], [num_samples, e, c, STEPS_PER_CHUNK, p, 2])
    # Level 0: [E, C] over every sample.
    union = tf.reshape(tf.transpose(chunks, [1, 2, 0, 3, 4, 5]), [e, c, -1, 2])
    centre, radius = chunk_bounds(union)
    lower = box_distance(centre[..., tf.newaxis, :], group_box) - radius[..., tf.newaxis]
    groups0, bound0 = select_smallest(lower, budget[0])  # [E, C, k0]
    # Level 1: [S, E, C] among the k0.
    centre, radius = chunk_bounds(tf.reshape(chunks, [num_samples, e, c, -1, 2]))
    boxes = tf.gather(group_box, groups0)[tf.newaxis]  # [1, E, C, k0, 4]
    lower = box_distance_batched(centre, boxes) - radius[..., tf.newaxis]
    local, bound1 = select_smallest(lower, budget[1])
    groups1 = tf.gather(tf.broadcast_to(groups0[tf.newaxis], lower.shape), local, batch_dims=3)
    # Level 2: [S, E, C, STEPS_PER_CHUNK] among the k1.
    centre, radius = chunk_bounds(chunks)
    boxes = tf.gather(group_box, groups1)[:, :, :, tf.newaxis]  # [S, E, C, 1, k1, 4]
    lower = box_distance_batched(centre, boxes) - radius[..., tf.newaxis]
    local, bound2 = select_smallest(lower, budget[2])
    groups = tf.gather(
        tf.broadcast_to(groups1[:, :, :, tf.newaxis], lower.shape), local, batch_dims=4
    )
    bound = tf.minimum(tf.minimum(bound0[tf.newaxis], bound1)[..., tf.newaxis], bound2)
    return tf.reshape(groups, [n, t, -1]), tf.reshape(bound, [n, t])


def first_argmin(score, index):
    """(index [...] of the minimum of score [..., K], minimum [...]); ties -> smallest index,
    which is what the official `tf.argmin` over the full segment table returns."""
    best = tf.reduce_min(score, axis=-1, keepdims=True)
    # tf.equal, never `==`: see the `fast_features` module docstring.
    winner = tf.reduce_min(tf.where(tf.equal(score, best), index, tf.int32.max), axis=-1)
    return winner, best[..., 0]


def _running_count(flags, block=64):
    """Inclusive running count [Q] int32 of bool flags [Q].

    XLA's CPU cumsum is a reduce-window as wide as the axis: O(Q^2), 0.7 ms for Q = 2,640, paid
    by every search of every evaluated agent. Counting within blocks, then across block totals,
    is O(Q * block).
    """
    num = flags.shape[0]
    padded = tf.pad(tf.cast(flags, tf.int32), [[0, (-num) % block]])
    within = tf.cumsum(tf.reshape(padded, [-1, block]), axis=1)
    before = tf.cumsum(within[:, -1], exclusive=True)
    return tf.reshape(within + before[:, tf.newaxis], [-1])[:num]


def fill_misses(miss, values, compute, slab):
    """values [Q, ...] with the entries flagged in miss [Q] recomputed by `compute`, in slabs.

    `compute(index [slab] int32) -> ([slab, ...] values, [slab] bool settled)` searches its
    queries again (more widely, or against every candidate: then settled is all True). A
    `tf.while_loop` runs ceil(misses / slab) times, so any number of misses costs no new
    compiled shape and none is left out; with no miss it does not run at all.

    Returns:
      (values, [Q] bool flagged and still not settled, [] int32 number flagged).
    """
    num = miss.shape[0]
    rank = _running_count(miss)
    total = rank[-1]
    rank -= 1
    num_slabs = (total + slab - 1) // slab

    def body(i, values, unsettled):
        local = rank - i * slab
        slot = tf.where(miss & (local >= 0) & (local < slab), local, slab)  # slab = discard slot
        index = tf.maximum(tf.math.unsorted_segment_max(tf.range(num), slot, slab + 1)[:slab], 0)
        used = tf.range(slab) < total - i * slab
        target = tf.where(used, index, num)[:, tf.newaxis]  # unused slots write a dropped extra row
        new, settled = compute(index)
        values = tf.tensor_scatter_nd_update(tf.concat([values, values[:1]], axis=0), target, new)
        unsettled = tf.tensor_scatter_nd_update(
            tf.concat([unsettled, [False]], axis=0), target, ~settled
        )
        return i + 1, values[:num], unsettled[:num]

    _, values, unsettled = tf.while_loop(
        lambda i, *_: i < num_slabs, body, (tf.constant(0), values, tf.zeros_like(miss))
    )
    return values, unsettled, total
