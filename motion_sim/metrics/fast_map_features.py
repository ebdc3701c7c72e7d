"""XLA-compilable WOSAC map features: distance to the road edge, red-light violation.

Same maths as the official `map_metric_features` and `traffic_light_features` (float32, same
formulas and tie-breaking), on static shapes: the nearest road-edge search is pruned exactly by
segment groups (`pruned_search`) instead of scoring every query point against every zero-padded
polyline point, and the nearest-lane search runs only for steps that cross a red light's stop
line. Whatever a pruned search cannot settle is searched again, then brute-forced, inside the
same call.
"""

from __future__ import annotations

import tensorflow as tf
from waymo_open_dataset.utils import box_utils, geometry_utils
from waymo_open_dataset.wdl_limited.sim_agents_metrics import map_metric_features

from motion_sim.metrics import pruned_search
from motion_sim.metrics.pruned_search import BIG, FALLBACK_SLAB, PRUNE_MARGIN
from motion_sim.metrics.scenario_arrays import CURRENT

OFFROAD_THRESHOLD = map_metric_features.OFFROAD_DISTANCE_THRESHOLD
# Segment groups (`scenario_arrays.GROUP_SIZE` segments each) scored per query step
# (`pruned_search`), (per chunk, per step). Per-step need on the shared scenarios: <= 9.
EDGE_GROUPS = (64, 32, 12)
# Of a step's EDGE_GROUPS[2] groups, the nearest EDGE_FIRST_GROUPS are scored first; the step is
# scored against all of them only where that cannot settle it.
EDGE_FIRST_GROUPS = 4
# Road-edge steps the chunk levels leave unsettled are searched on their own over all groups,
# STEP_SLAB at a time (before the brute-force fallback).
STEP_SLAB = 64
STEP_GROUPS = 24
# The road-edge tables `distance_to_road_edge` reads (ScenarioArrays fields of the same names).
EDGE_FIELDS = (
    "edge_start",
    "edge_end",
    "edge_valid",
    "edge_prior",
    "edge_next",
    "edge_prior_valid",
    "edge_next_valid",
    "edge_convex_before",
    "edge_convex_after",
    "edge_groups",
    "edge_group_box",
)
# Red-light crossings searched at once against every lane segment.
LANE_SLAB = 16
_Z_STRETCH = 3.0  # official map_metric_features._Z_STRETCH_FACTOR


def _park_invalid(points, valid):
    """Moves the points of invalid steps to the agent's last valid position (forward fill).

    Their results are masked out by the official code anyway, but logged invalid states hold
    placeholder coordinates far from the map, which would defeat the group search.

    Args:
      points: [E, 1 + T, P, D], index 0 = the current step (valid for every sim agent).
      valid: [E, 1 + T] bool.

    Returns:
      [E, T, P, D] the future steps, invalid ones replaced.
    """
    steps = points.shape[1]
    t = tf.range(steps)
    # last[e, t] = max{s <= t : valid[e, s]} (s = 0 always qualifies).
    candidates = tf.where(valid[:, tf.newaxis, :] & (t[tf.newaxis, :, tf.newaxis] >= t), t, 0)
    last = tf.reduce_max(candidates, axis=-1)
    return tf.gather(points, last, batch_dims=1)[:, 1:]


def _edge_scores(q, start, end):
    """Official road-edge terms of points q [..., 3] vs segments [..., 3] (broadcasting).

    Returns (z-stretched 3-D distance used for the argmin, 2-D distance, rel_t, side sign n).
    """
    start_to_point = q - start
    start_to_end = end - start
    rel_t = tf.math.divide_no_nan(
        geometry_utils.dot_product_2d(start_to_point[..., :2], start_to_end[..., :2]),
        geometry_utils.dot_product_2d(start_to_end[..., :2], start_to_end[..., :2]),
    )
    n = tf.sign(geometry_utils.cross_product_2d(start_to_point[..., :2], start_to_end[..., :2]))
    seg_to_point = (
        start_to_point - start_to_end * tf.clip_by_value(rel_t, 0.0, 1.0)[..., tf.newaxis]
    )
    d3 = tf.norm(seg_to_point * tf.constant([1.0, 1.0, _Z_STRETCH]), axis=-1)
    return d3, tf.norm(seg_to_point[..., :2], axis=-1), rel_t, n


def distance_to_road_edge(xyzh, valid, size, num_eval, edges, num_samples=1):
    """Official `compute_distance_to_road_edge` on steps 11..90, searched by segment groups.

    Steps the group levels cannot settle are searched again among all the level-1 groups of
    their chunk; what remains (e.g. a chunk of a rollout that jumps far) is scored against every
    segment (`pruned_search.fill_misses`), so the result is always exact.

    Args:
      xyzh: [N, 1 + T, 4] float32 current + future steps; valid: [N, 1 + T] bool; size: [N, 3];
        num_eval: N rows (samples of the evaluated agents, sample-major).
      edges: dict of the `ScenarioArrays.edge_*` tensors (S segments, G groups).
      num_samples: samples among the N rows.

    Returns:
      ([N, T] float32 signed distance, positive = off-road; [] int32 queries brute-forced).
    """
    num_steps = xyzh.shape[1] - 1
    e_xyzh = xyzh[:num_eval]
    e_size = tf.broadcast_to(size[:num_eval, tf.newaxis], [num_eval, num_steps + 1, 3])
    boxes = tf.concat([e_xyzh[..., :3], e_size, e_xyzh[..., 3:]], axis=-1)
    corners = box_utils.get_upright_3d_box_corners(tf.reshape(boxes, [-1, 7]))[:, :4]
    corners = tf.reshape(corners, [num_eval, num_steps + 1, 4, 3])
    corners = _park_invalid(corners, valid[:num_eval])
    valid = valid[:, 1:]
    start, end, seg_ok = edges["edge_start"], edges["edge_end"], edges["edge_valid"]
    groups, next_bound = pruned_search.nearest_groups(
        corners, edges["edge_group_box"], EDGE_GROUPS, num_samples
    )
    member = edges["edge_groups"]
    # The argmin runs on squared scores (sqrt is monotonic, so min and argmin are the same up
    # to ties that the rounding of sqrt would create) and a segment's direction and length are
    # computed once per call, not once per candidate.
    direction = end - start
    length2 = tf.where(
        seg_ok, geometry_utils.dot_product_2d(direction[:, :2], direction[:, :2]), 0.0
    )

    def nearest(points, cand):
        """(segment [Q, 4], its z-stretched distance [Q, 4]) of points [Q, 4, 3] among cand [Q, K]."""
        c_start = tf.gather(start, cand)[:, tf.newaxis]  # [Q, 1, K, 3]
        c_dir = tf.gather(direction, cand)[:, tf.newaxis]
        start_to_point = points[:, :, tf.newaxis] - c_start  # [Q, 4, K, 3]
        rel_t = tf.math.divide_no_nan(
            geometry_utils.dot_product_2d(start_to_point[..., :2], c_dir[..., :2]),
            tf.gather(length2, cand)[:, tf.newaxis],
        )
        offset = start_to_point - c_dir * tf.clip_by_value(rel_t, 0.0, 1.0)[..., tf.newaxis]
        d3_sq = (
            offset[..., 0] * offset[..., 0]
            + offset[..., 1] * offset[..., 1]
            + (_Z_STRETCH * offset[..., 2]) * (_Z_STRETCH * offset[..., 2])
        )
        d3_sq = tf.where(tf.gather(seg_ok, cand)[:, tf.newaxis], d3_sq, BIG)
        seg, best = pruned_search.first_argmin(
            d3_sq, tf.broadcast_to(cand[:, tf.newaxis], d3_sq.shape)
        )
        return seg, tf.sqrt(best)

    num_queries = num_eval * num_steps
    flat_corners = tf.reshape(corners, [num_queries, 4, 3])
    groups = tf.reshape(groups, [num_queries, -1])
    next_bound = tf.reshape(next_bound, [-1])
    first = EDGE_FIRST_GROUPS
    seg, best = nearest(
        flat_corners, tf.reshape(tf.gather(member, groups[:, :first]), [num_queries, -1])
    )
    # Every segment outside the scored groups scores >= its 2-D distance >= the bound. Most steps
    # settle on their nearest few groups; the others are scored against all the groups the
    # levels kept, then (e.g. mid-intersection, many edges about as far, or a chunk whose
    # samples drift apart) get a group search of their own, STEP_SLAB steps at a time.
    # The kept groups not scored are bounded per corner (tighter than the step's circle).
    rest = tf.gather(edges["edge_group_box"], groups[:, first:])[:, tf.newaxis]  # [Q, 1, k, 4]
    rest_lower = pruned_search.box_distance_batched(flat_corners[..., :2], rest)  # [Q, 4, k]
    first_bound = tf.minimum(next_bound[:, tf.newaxis], tf.reduce_min(rest_lower, axis=-1))
    miss = tf.reduce_any(~(first_bound > best + PRUNE_MARGIN), axis=-1)

    def kept_groups(query):
        seg2, best2 = nearest(
            tf.gather(flat_corners, query),
            tf.reshape(tf.gather(member, tf.gather(groups, query)), [query.shape[0], -1]),
        )
        return seg2, tf.gather(next_bound, query) > tf.reduce_max(best2, axis=-1) + PRUNE_MARGIN

    def own_groups(query):
        # Steps the chunk levels cannot settle (their chunk spans far: samples that drift apart
        # or jump) get a search of their own among all the groups: tight, one step's corners.
        points = tf.gather(flat_corners, query)
        centre, radius = pruned_search.chunk_bounds(points)
        lower = pruned_search.box_distance(centre[:, tf.newaxis], edges["edge_group_box"])
        own, bound = pruned_search.select_smallest(lower - radius[:, tf.newaxis], STEP_GROUPS)
        seg2, best2 = nearest(points, tf.reshape(tf.gather(member, own), [query.shape[0], -1]))
        return seg2, bound > tf.reduce_max(best2, axis=-1) + PRUNE_MARGIN

    every_segment = tf.broadcast_to(
        tf.range(start.shape[0])[tf.newaxis], [FALLBACK_SLAB, start.shape[0]]
    )

    def every_edge(query):
        return (
            nearest(tf.gather(flat_corners, query), every_segment)[0],
            tf.ones_like(query, tf.bool),
        )

    seg, unsettled, _ = pruned_search.fill_misses(miss, seg, kept_groups, STEP_SLAB)
    seg, unsettled, _ = pruned_search.fill_misses(unsettled, seg, own_groups, STEP_SLAB)
    seg, _, fallbacks = pruned_search.fill_misses(unsettled, seg, every_edge, FALLBACK_SLAB)
    seg = tf.reshape(seg, [num_eval, num_steps, 4])
    _, d2, rel_t, n = _edge_scores(corners, tf.gather(start, seg), tf.gather(end, seg))

    def neighbour_sign(idx):
        ns, ne = tf.gather(start, idx), tf.gather(end, idx)
        return tf.sign(
            geometry_utils.cross_product_2d(
                corners[..., :2] - ns[..., :2], ne[..., :2] - ns[..., :2]
            )
        )

    n_prior = neighbour_sign(tf.gather(edges["edge_prior"], seg))
    n_next = neighbour_sign(tf.gather(edges["edge_next"], seg))
    before = tf.where(
        tf.gather(edges["edge_convex_before"], seg), tf.maximum(n, n_prior), tf.minimum(n, n_prior)
    )
    after = tf.where(
        tf.gather(edges["edge_convex_after"], seg), tf.maximum(n, n_next), tf.minimum(n, n_next)
    )
    sign = tf.where(
        (rel_t < 0.0) & tf.gather(edges["edge_prior_valid"], seg),
        before,
        tf.where((rel_t > 1.0) & tf.gather(edges["edge_next_valid"], seg), after, n),
    )
    dist = tf.reduce_max(sign * d2, axis=-1)
    return tf.where(valid[:num_eval], dist, -BIG), fallbacks


def red_light_violation(xy_full, valid, num_rows, lanes):
    """Official `compute_red_light_violation` on steps 11..90.

    A violation needs a red light whose stop line the agent crosses on that step *and* the
    light's lane being the agent's nearest lane. Crossings are cheap to test for every step;
    the nearest-lane search (the costly part) runs only for the few steps with a red crossing,
    LANE_SLAB at a time against every lane segment (no crossing: no search at all).

    Args:
      xy_full: [N, 91, 2] float32 centres (step 10 is needed for crossings at step 11).
      valid: [N, T] bool future validity.
      num_rows: N (every row is evaluated).
      lanes: dict of the `ScenarioArrays.lane_*` and `tl_*` tensors.

    Returns:
      [N, T] bool violation.
    """
    xy = xy_full[:num_rows, CURRENT:]  # [N, 1 + T, 2]
    num_steps = xy.shape[1] - 1
    seg_start, seg_dir = lanes["tl_seg_start"][CURRENT:], lanes["tl_seg_dir"][CURRENT:]
    start_to_xy = xy[:, :, tf.newaxis] - seg_start[tf.newaxis]
    obj_t = tf.math.divide_no_nan(
        geometry_utils.dot_product_2d(start_to_xy, seg_dir[tf.newaxis]),
        geometry_utils.dot_product_2d(seg_dir, seg_dir)[tf.newaxis],
    )
    stop_t = lanes["tl_stop_t"][tf.newaxis, CURRENT:]
    crossed = (obj_t < stop_t)[:, :-1] & (obj_t > stop_t)[:, 1:]
    red = lanes["tl_red"][CURRENT + 1 :]
    candidate = valid[:num_rows, :, tf.newaxis] & red[tf.newaxis] & crossed  # [N, T, K]
    num_lights = candidate.shape[-1]
    candidate = tf.reshape(candidate, [-1, num_lights])  # [Q, K]
    crossing = tf.reduce_any(candidate, axis=-1)
    pts = tf.reshape(xy[:, 1:], [-1, 2])  # [Q, 2]
    start, end, seg_ok = lanes["lane_start"], lanes["lane_end"], lanes["lane_valid"]
    start_to_end = end - start
    length2 = geometry_utils.dot_product_2d(start_to_end, start_to_end)
    every_segment = tf.broadcast_to(
        tf.range(start.shape[0])[tf.newaxis], [LANE_SLAB, start.shape[0]]
    )

    def nearest_lane_segment(query):
        # The official nearest-lane score is |(q - s) + t (e - s)| (sic), over every segment.
        start_to_point = tf.gather(pts, query)[:, tf.newaxis] - start
        rel_t = tf.math.divide_no_nan(
            geometry_utils.dot_product_2d(start_to_point, start_to_end), length2
        )
        score = tf.norm(
            start_to_point + start_to_end * tf.clip_by_value(rel_t, 0.0, 1.0)[..., tf.newaxis],
            axis=-1,
        )
        score = tf.where(seg_ok, score, BIG)
        return pruned_search.first_argmin(score, every_segment)[0]

    seg, _, _ = pruned_search.fill_misses(
        crossing,
        tf.zeros_like(crossing, tf.int32),
        lambda query: (nearest_lane_segment(query), tf.ones_like(query, tf.bool)),
        LANE_SLAB,
    )
    lane = tf.gather(lanes["lane_id"], seg)  # [Q]
    tl_lane = tf.tile(lanes["tl_lane_id"][CURRENT + 1 :], [num_rows, 1])  # [Q, K]
    hit = tf.reduce_any(tf.equal(lane[:, tf.newaxis], tl_lane) & candidate, axis=-1) & crossing
    return tf.reshape(hit, [num_rows, num_steps])
