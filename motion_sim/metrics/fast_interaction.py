"""XLA-compilable WOSAC interaction features: distance to the nearest object, time to collision.

Same maths as the official `interaction_features` (float32, same formulas and tie-breaking);
the nearest-object search is pruned exactly (`pruned_search`). Every step is independent, so
callers fold the samples into the step axis (`fast_features.map_and_interaction_features`).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf
from waymo_open_dataset.utils import geometry_utils
from waymo_open_dataset.wdl_limited.sim_agents_metrics import interaction_features as official_ix

from motion_sim.metrics import pruned_search
from motion_sim.metrics.pruned_search import BIG, FALLBACK_SLAB, PRUNE_MARGIN, STEPS_PER_CHUNK

COLLISION_THRESHOLD = official_ix.COLLISION_DISTANCE_THRESHOLD
# Objects per (evaluated agent, step) whose exact box distance is computed (the rest are
# bounded by their circumradii; see `distance_to_nearest_object`).
NEAREST_OBJECTS = 6
# Objects kept per chunk of STEPS_PER_CHUNK steps, among which each step's NEAREST_OBJECTS are
# chosen.
NEAREST_CHUNK_OBJECTS = 12
# Of those, the nearest NEAREST_FIRST (by the bound) are scored on every step, the others only
# where the first ones do not settle the step.
NEAREST_FIRST = 2


def _bottom_corners_2d(xy, cos, sin, length, width):
    """xy of the 4 bottom corners [..., 4, 2] of boxes at xy [..., 2] with heading cos, sin [...]
    and sizes length, width [...].

    `box_utils.get_upright_3d_box_corners(...)[:, :4, :2]` (same corner order and formula),
    without the 3-D rotation matmul over 8 corners: ~half the nearest-object time otherwise.
    """
    l2 = (length * 0.5)[..., tf.newaxis]
    w2 = (width * 0.5)[..., tf.newaxis]
    local_x = tf.constant([1.0, -1.0, -1.0, 1.0]) * l2  # [..., 4]
    local_y = tf.constant([1.0, 1.0, -1.0, -1.0]) * w2
    c, s = cos[..., tf.newaxis], sin[..., tf.newaxis]
    x = (c * local_x - s * local_y) + xy[..., 0:1]
    y = (s * local_x + c * local_y) + xy[..., 1:2]
    return tf.stack([x, y], axis=-1)


class ObjectBoxes(NamedTuple):
    """Every agent's footprint on every (folded) step, shared by the evaluated agents' searches.

    Steps also come in chunks of STEPS_PER_CHUNK (C = T / STEPS_PER_CHUNK) summarised for the
    nearest-object pruning: each agent's mean valid position over the chunk and every step's
    offset from it, in a frame centred on the scene (small coordinates keep float32 rounding
    far below PRUNE_MARGIN).

    Attributes:
      xy: [T, A, 2] float32 centres.
      cos, sin: [T, A] float32 of the headings.
      length, width: [A] float32 box sizes shrunk by `shrink` (corners: `corners`).
      reach: [A] float32 circumradius of the shrunk box plus `shrink` (bounds the box distance).
      shrink: [A] float32 corner rounding (official CORNER_ROUNDING_FACTOR).
      valid: [T, A] bool.
      chunk_mean: [C, A, 2] float32 mean valid position over the chunk (0 if none valid).
      chunk_offset: [2, C, STEPS_PER_CHUNK, A] float32 x and y of position - chunk_mean (0 when
        invalid).
      chunk_valid: [C, A] bool, valid on some step of the chunk.
      num_valid: [T] int32 valid agents on each step.
    """

    xy: tf.Tensor
    cos: tf.Tensor
    sin: tf.Tensor
    length: tf.Tensor
    width: tf.Tensor
    reach: tf.Tensor
    shrink: tf.Tensor
    valid: tf.Tensor
    chunk_mean: tf.Tensor
    chunk_offset: tf.Tensor
    chunk_valid: tf.Tensor
    num_valid: tf.Tensor


def object_boxes(xy, cos, sin, valid, size) -> ObjectBoxes:
    """`ObjectBoxes` of centres xy [T, A, 2], heading cos, sin [T, A], valid [T, A], size [A, 3]."""
    shrink = tf.minimum(size[:, 0], size[:, 1]) * official_ix.CORNER_ROUNDING_FACTOR / 2.0  # [A]
    length, width = size[:, 0] - 2.0 * shrink, size[:, 1] - 2.0 * shrink
    reach = 0.5 * tf.sqrt(length * length + width * width) + shrink
    num_steps, num_agents = valid.shape
    shape = [num_steps // STEPS_PER_CHUNK, STEPS_PER_CHUNK, num_agents]
    weight = tf.cast(valid, tf.float32)
    chunk_valid = tf.reshape(valid, shape)
    count = tf.maximum(tf.reduce_sum(tf.reshape(weight, shape), axis=1), 1.0)  # [C, A]
    mean, offset = [], []
    for plane in (xy[..., 0], xy[..., 1]):  # x and y planes [T, A]: contiguous agent axis
        origin = tf.reduce_sum(plane * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)
        local = tf.reshape(tf.where(valid, plane - origin, 0.0), shape)
        mean.append(tf.reduce_sum(local, axis=1) / count)
        offset.append(tf.where(chunk_valid, local - mean[-1][:, tf.newaxis], 0.0))
    return ObjectBoxes(
        xy,
        cos,
        sin,
        length,
        width,
        reach,
        shrink,
        valid,
        tf.stack(mean, axis=-1),
        tf.stack(offset, axis=0),
        tf.reduce_any(chunk_valid, axis=1),
        tf.reduce_sum(tf.cast(valid, tf.int32), axis=1),
    )


def _on_steps(x, steps):
    """x [T, ...] on steps [Q] (None: all T)."""
    return x if steps is None else tf.gather(x, steps)


def corners(boxes: ObjectBoxes, agents, steps=None):
    """Bottom corners [Q, K, 4, 2] of the boxes of agents [Q, K] on steps [Q] (None: all T).

    Computed for the few boxes a search scores, not stored for every agent and step."""

    def at(x):
        return tf.gather(_on_steps(x, steps), agents, batch_dims=1)

    return _bottom_corners_2d(
        at(boxes.xy),
        at(boxes.cos),
        at(boxes.sin),
        tf.gather(boxes.length, agents),
        tf.gather(boxes.width, agents),
    )


def _box_distances(eval_corners, other_corners, eval_shrink, other_shrink):
    """Official rounded-box distance of eval_corners [Q, 4, 2] to other_corners [Q, K, 4, 2]
    (shrinks [] and [Q, K]) -> [Q, K]."""
    num_queries, num_other = other_corners.shape[:2]
    eval_c = tf.broadcast_to(eval_corners[:, tf.newaxis], [num_queries, num_other, 4, 2])
    mink = geometry_utils.minkowski_sum_of_box_and_box_points(
        tf.reshape(eval_c, [-1, 4, 2]), -1.0 * tf.reshape(other_corners, [-1, 4, 2])
    )
    dist = geometry_utils.signed_distance_from_point_to_convex_polygon(
        tf.zeros_like(mink[:, 0, :]), mink
    )
    dist = tf.reshape(dist, [num_queries, num_other])
    dist -= eval_shrink
    return dist - other_shrink


def distance_to_nearest_object(e, boxes: ObjectBoxes):
    """Official `compute_distance_to_nearest_object` of evaluated agent `e` on every step.

    Only the NEAREST_OBJECTS objects with the smallest lower bound (centre distance minus both
    boxes' circumradii) get the exact box-to-box distance; steps where the best distance found
    does not beat the bound of every object left out are recomputed against every object
    (`pruned_search.fill_misses`), so the result is always exact.

    Args:
      e: [] int32 row of the evaluated agent.
      boxes: `ObjectBoxes` of every agent on T steps (samples folded into steps).

    Returns:
      ([T] float32 signed distances (1e10 when nothing valid), [] int32 steps recomputed).
    """
    num_steps, num_agents = boxes.valid.shape
    chunks, chunk = num_steps // STEPS_PER_CHUNK, STEPS_PER_CHUNK
    not_self = ~tf.one_hot(e, num_agents, on_value=True, off_value=False)
    reach = tf.gather(boxes.reach, e) + boxes.reach  # [A]
    # Objects are first narrowed per chunk of steps: for a step where both are valid, the
    # centre distance is >= |mean_o - mean_e| - |offset_o(t) - offset_e(t)| (the chunk's largest
    # such offset difference is small for traffic moving together), so the k-smallest passes
    # run over chunks, not steps.
    diff = boxes.chunk_offset - tf.gather(boxes.chunk_offset, e, axis=3)[..., tf.newaxis]
    spread = tf.sqrt(tf.reduce_max(diff[0] * diff[0] + diff[1] * diff[1], axis=1))  # [C, A]
    apart = tf.norm(
        boxes.chunk_mean - tf.gather(boxes.chunk_mean, e, axis=1)[:, tf.newaxis], axis=-1
    )
    chunk_ok = boxes.chunk_valid & tf.gather(boxes.chunk_valid, e, axis=1)[:, tf.newaxis] & not_self
    chunk_lower = tf.where(chunk_ok, apart - spread - reach, BIG)
    kept, chunk_bound = pruned_search.select_smallest(chunk_lower, NEAREST_CHUNK_OBJECTS)  # [C, k]
    # Their exact centre-distance bounds on each step of the chunk.
    kept = tf.reshape(
        tf.broadcast_to(kept[:, tf.newaxis], [chunks, chunk, kept.shape[-1]]), [num_steps, -1]
    )  # [T, k]
    pair_ok = (
        tf.gather(boxes.valid, kept, batch_dims=1)
        & tf.gather(boxes.valid, e, axis=1)[:, tf.newaxis]
        & tf.not_equal(kept, e)
    )
    step_lower = tf.where(
        pair_ok,
        tf.norm(
            tf.gather(boxes.xy, kept, batch_dims=1) - tf.gather(boxes.xy, e, axis=1)[:, tf.newaxis],
            axis=-1,
        )
        - tf.gather(reach, kept),
        BIG,
    )
    local, step_bound = pruned_search.select_smallest(step_lower, NEAREST_OBJECTS)
    other = tf.gather(kept, local, batch_dims=1)  # [T, NEAREST_OBJECTS]
    other_lower = tf.gather(step_lower, local, batch_dims=1)
    next_bound = tf.minimum(tf.repeat(chunk_bound, chunk), step_bound)
    eval_valid = tf.gather(boxes.valid, e, axis=1)  # [T]
    # Steps with no valid pair at all (the logged agent or every other one invalid) are settled
    # at 1e10 whatever the chunk bound says.
    any_pair = eval_valid & (boxes.num_valid > 1)
    next_bound = tf.where(any_pair, next_bound, BIG)
    eval_corners = corners(boxes, tf.fill([num_steps, 1], e))[:, 0]  # [T, 4, 2]
    eval_shrink = tf.gather(boxes.shrink, e)

    def best_of(candidates, steps=None):
        """Smallest exact distance [Q] to the objects candidates [Q, K] on steps [Q] (all: None)."""
        dist = _box_distances(
            _on_steps(eval_corners, steps),
            corners(boxes, candidates, steps),
            eval_shrink,
            tf.gather(boxes.shrink, candidates),
        )
        ok = (
            tf.gather(_on_steps(boxes.valid, steps), candidates, batch_dims=1)
            & _on_steps(eval_valid, steps)[:, tf.newaxis]
            & tf.not_equal(candidates, e)
        )
        return tf.reduce_min(tf.where(ok, dist, BIG), axis=-1)

    def settled(bound, best):
        return (bound >= BIG) | (bound > best + PRUNE_MARGIN)

    # The nearest NEAREST_FIRST candidates first; the rest of the NEAREST_OBJECTS only for steps
    # where their lower bounds leave the answer open, then every object.
    first = NEAREST_FIRST
    best = best_of(other[:, :first])
    first_bound = tf.minimum(next_bound, tf.reduce_min(other_lower[:, first:], axis=-1))
    miss = ~settled(first_bound, best)

    def all_candidates(query):
        best = best_of(tf.gather(other, query), query)
        return best, settled(tf.gather(next_bound, query), best)

    def every_object(steps):
        every = tf.broadcast_to(tf.range(num_agents), [steps.shape[0], num_agents])
        all_corners = corners(boxes, every, steps)  # [slab, A, 4, 2]
        d = _box_distances(
            tf.gather(eval_corners, steps),
            all_corners,
            eval_shrink,
            tf.broadcast_to(boxes.shrink, all_corners.shape[:2]),
        )
        ok = tf.gather(boxes.valid, steps) & tf.gather(eval_valid, steps)[:, tf.newaxis] & not_self
        best = tf.reduce_min(tf.where(ok, d, BIG), axis=-1)
        return best, tf.ones_like(steps, tf.bool)

    best, unsettled, _ = pruned_search.fill_misses(miss, best, all_candidates, FALLBACK_SLAB)
    best, _, fallbacks = pruned_search.fill_misses(unsettled, best, every_object, FALLBACK_SLAB)
    return best, fallbacks


class TtcFrame(NamedTuple):
    """Time-major inputs of `time_to_collision`, shared by the evaluated agents.

    Attributes:
      xy: [T, A, 2]; yaw, cos, sin: [T, A, 1]; speed: [T, A]; valid: [T, A] bool;
      sizes: [T, A, 2] length, width.
    """

    xy: tf.Tensor
    yaw: tf.Tensor
    cos: tf.Tensor
    sin: tf.Tensor
    speed: tf.Tensor
    valid: tf.Tensor
    sizes: tf.Tensor


def ttc_frame(xy, yaw, cos, sin, speed, valid, size) -> TtcFrame:
    """`TtcFrame` of xy [T, A, 2], heading yaw, cos, sin [T, A], speed [T, A] (`kinematics` with
    z = 0, as the official code), valid [T, A], size [A, 3]."""
    sizes = tf.broadcast_to(size[tf.newaxis, :, :2], [xy.shape[0], size.shape[0], 2])
    return TtcFrame(
        xy,
        yaw[..., tf.newaxis],
        cos[..., tf.newaxis],
        sin[..., tf.newaxis],
        speed,
        valid,
        sizes,
    )


def time_to_collision(e, frame: TtcFrame):
    """Official `compute_time_to_collision_with_object_in_front` of evaluated agent `e`.

    Every step is independent once the speeds are known, so callers may fold several samples
    into the step axis.

    Returns:
      [T] float32 seconds, capped at 5.
    """
    ego = tf.reshape(e, [1])
    xy, yaw, speed, valid, sizes = frame.xy, frame.yaw, frame.speed, frame.valid, frame.sizes
    ego_xy, ego_yaw = tf.gather(xy, ego, axis=1), tf.gather(yaw, ego, axis=1)
    ego_sizes, ego_speed = tf.gather(sizes, ego, axis=1), tf.gather(speed, ego, axis=1)
    yaw_diff = tf.abs(yaw[:, tf.newaxis] - ego_yaw[:, :, tf.newaxis])
    # |cos| and |sin| of the yaw difference from per-object cos/sin (angle-difference
    # identities): one sin/cos per object and step instead of per pair.
    cos_o, sin_o = frame.cos[:, tf.newaxis], frame.sin[:, tf.newaxis]
    cos_e = tf.gather(frame.cos, ego, axis=1)[:, :, tf.newaxis]
    sin_e = tf.gather(frame.sin, ego, axis=1)[:, :, tf.newaxis]
    cos = tf.abs(cos_o * cos_e + sin_o * sin_e)
    sin = tf.abs(sin_o * cos_e - cos_o * sin_e)
    other_long = geometry_utils.dot_product_2d(
        sizes[:, tf.newaxis] / 2.0, tf.concat([cos, sin], axis=-1)
    )
    other_lat = geometry_utils.dot_product_2d(
        sizes[:, tf.newaxis] / 2.0, tf.concat([sin, cos], axis=-1)
    )
    rel_xy = geometry_utils.rotate_2d_points(xy[:, tf.newaxis] - ego_xy[:, :, tf.newaxis], -ego_yaw)
    long_dist = rel_xy[..., 0] - ego_sizes[:, :, tf.newaxis, 0] / 2.0 - other_long
    lat_overlap = tf.abs(rel_xy[..., 1]) - ego_sizes[:, :, tf.newaxis, 1] / 2.0 - other_lat
    yaw_diff = yaw_diff[..., 0]
    following = (
        (long_dist > 0.0)
        & (yaw_diff <= official_ix.MAX_HEADING_DIFF)
        & (lat_overlap < 0.0)
        & (
            (lat_overlap < -official_ix.SMALL_OVERLAP_THRESHOLD)
            | (yaw_diff <= official_ix.MAX_HEADING_DIFF_FOR_SMALL_OVERLAP)
        )
    )
    mask = valid[:, tf.newaxis] & following
    masked = long_dist + (1.0 - tf.cast(mask, tf.float32)) * BIG
    # The official argmin, as two plain reductions (XLA's CPU argmin is a slow two-operand
    # reduction): the minimum, then the first index holding it.
    dist_ahead = tf.reduce_min(masked, axis=-1)
    ahead = tf.reduce_min(
        tf.where(
            tf.equal(masked, dist_ahead[..., tf.newaxis]),
            tf.range(masked.shape[-1]),
            masked.shape[-1],
        ),
        axis=-1,
    )
    speed_ahead = tf.gather(speed, tf.minimum(ahead, masked.shape[-1] - 1), batch_dims=1)
    rel_speed = ego_speed - speed_ahead
    ttc = tf.where(
        rel_speed > 0.0,
        tf.minimum(dist_ahead / rel_speed, official_ix.MAXIMUM_TIME_TO_COLLISION),
        official_ix.MAXIMUM_TIME_TO_COLLISION,
    )
    return ttc[:, 0]
