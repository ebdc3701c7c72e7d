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
from motion_sim.metrics.pruned_search import BIG, FALLBACK_SLAB, PRUNE_MARGIN

COLLISION_THRESHOLD = official_ix.COLLISION_DISTANCE_THRESHOLD
# Objects per (evaluated agent, step) whose exact box distance is computed (the rest are
# bounded by their circumradii; see `distance_to_nearest_object`).
NEAREST_OBJECTS = 6


def _bottom_corners_2d(xyzh, length, width):
    """xy of the 4 bottom corners [A, T, 4, 2] of boxes at xyzh [A, T, 4] with sizes [A].

    `box_utils.get_upright_3d_box_corners(...)[:, :4, :2]` (same corner order and formula),
    without the 3-D rotation matmul over 8 corners: ~half the nearest-object time otherwise.
    """
    cos, sin = tf.cos(xyzh[..., 3]), tf.sin(xyzh[..., 3])
    l2 = (length * 0.5)[:, tf.newaxis, tf.newaxis]
    w2 = (width * 0.5)[:, tf.newaxis, tf.newaxis]
    local_x = tf.constant([1.0, -1.0, -1.0, 1.0]) * l2  # [A, 1, 4]
    local_y = tf.constant([1.0, 1.0, -1.0, -1.0]) * w2
    c, s = cos[..., tf.newaxis], sin[..., tf.newaxis]
    x = (c * local_x - s * local_y) + xyzh[..., 0:1]
    y = (s * local_x + c * local_y) + xyzh[..., 1:2]
    return tf.stack([x, y], axis=-1)


class ObjectBoxes(NamedTuple):
    """Every agent's footprint on every (folded) step, shared by the evaluated agents' searches.

    Attributes:
      corners: [T, A, 4, 2] float32 bottom corners of the boxes shrunk by `shrink`.
      xy: [T, A, 2] float32 centres.
      reach: [A] float32 circumradius of the shrunk box plus `shrink` (bounds the box distance).
      shrink: [A] float32 corner rounding (official CORNER_ROUNDING_FACTOR).
      valid: [T, A] bool.
    """

    corners: tf.Tensor
    xy: tf.Tensor
    reach: tf.Tensor
    shrink: tf.Tensor
    valid: tf.Tensor


def object_boxes(xyzh, valid, size) -> ObjectBoxes:
    """`ObjectBoxes` of xyzh [A, T, 4], valid [A, T], size [A, 3]."""
    shrink = tf.minimum(size[:, 0], size[:, 1]) * official_ix.CORNER_ROUNDING_FACTOR / 2.0  # [A]
    length, width = size[:, 0] - 2.0 * shrink, size[:, 1] - 2.0 * shrink
    corners = tf.transpose(_bottom_corners_2d(xyzh, length, width), [1, 0, 2, 3])
    reach = 0.5 * tf.sqrt(length * length + width * width) + shrink
    return ObjectBoxes(
        corners, tf.transpose(xyzh[..., :2], [1, 0, 2]), reach, shrink, tf.transpose(valid)
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
    num_agents = boxes.valid.shape[1]
    eval_xy = tf.gather(boxes.xy, e, axis=1)[:, tf.newaxis]  # [T, 1, 2]
    lower = (
        tf.norm(boxes.xy - eval_xy, axis=-1) - tf.gather(boxes.reach, e) - boxes.reach[tf.newaxis]
    )  # [T, A]
    pair_ok = (
        tf.gather(boxes.valid, e, axis=1)[:, tf.newaxis]
        & boxes.valid
        & ~tf.one_hot(e, num_agents, on_value=True, off_value=False)[tf.newaxis]
    )
    lower = tf.where(pair_ok, lower, BIG)
    other, next_bound = pruned_search.select_smallest(lower, NEAREST_OBJECTS)  # [T, k]
    eval_corners = tf.gather(boxes.corners, e, axis=1)  # [T, 4, 2]
    eval_shrink = tf.gather(boxes.shrink, e)
    dist = _box_distances(
        eval_corners,
        tf.gather(boxes.corners, other, batch_dims=1),
        eval_shrink,
        tf.gather(boxes.shrink, other),
    )
    best = tf.reduce_min(tf.where(tf.gather(pair_ok, other, batch_dims=1), dist, BIG), axis=-1)
    miss = ~((next_bound >= BIG) | (next_bound > best + PRUNE_MARGIN))

    def every_object(steps):
        all_corners = tf.gather(boxes.corners, steps)  # [slab, A, 4, 2]
        d = _box_distances(
            tf.gather(eval_corners, steps),
            all_corners,
            eval_shrink,
            tf.broadcast_to(boxes.shrink, all_corners.shape[:2]),
        )
        best = tf.reduce_min(tf.where(tf.gather(pair_ok, steps), d, BIG), axis=-1)
        return best, tf.ones_like(steps, tf.bool)

    best, _, fallbacks = pruned_search.fill_misses(miss, best, every_object, FALLBACK_SLAB)
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


def ttc_frame(xyh, speed, valid, size) -> TtcFrame:
    """`TtcFrame` of xyh [A, T, 3] (x, y, heading), speed [A, T] (`kinematics` with z = 0, as
    the official code), valid [A, T], size [A, 3]."""
    xy = tf.transpose(xyh[..., :2], [1, 0, 2])
    yaw = tf.transpose(xyh[..., 2])[..., tf.newaxis]
    sizes = tf.broadcast_to(size[tf.newaxis, :, :2], [xy.shape[0], size.shape[0], 2])
    return TtcFrame(
        xy, yaw, tf.cos(yaw), tf.sin(yaw), tf.transpose(speed), tf.transpose(valid), sizes
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
    ahead = tf.argmin(masked, axis=-1)
    dist_ahead = tf.gather(masked, ahead, batch_dims=2)
    speed_ahead = tf.gather(speed, ahead, batch_dims=1)
    rel_speed = ego_speed - speed_ahead
    ttc = tf.where(
        rel_speed > 0.0,
        tf.minimum(dist_ahead / rel_speed, official_ix.MAXIMUM_TIME_TO_COLLISION),
        official_ix.MAXIMUM_TIME_TO_COLLISION,
    )
    return ttc[:, 0]
