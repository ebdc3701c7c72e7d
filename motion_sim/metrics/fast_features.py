"""XLA-compilable WOSAC metric features of a scenario's log and rollouts (all samples at once).

Same maths as the official `interaction_features`, `map_metric_features` and
`traffic_light_features` (float32, same formulas, same tie-breaking), restructured so it compiles
with static shapes: evaluated agents are the first E rows instead of `tf.where(mask)` gathers,
and the nearest road-edge / lane-segment / object searches are pruned exactly (`pruned_search`)
instead of scoring every query point against every zero-padded polyline point.

Only the 80 simulated steps are computed: every feature here is per step, and the official code
slices the 11 history steps away afterwards.

Tensors are compared with `tf.equal`, never `==`: inside a `tf.function`, `Tensor.__eq__` is
elementwise only while TF believes the outermost context is eager. When TensorFlow is first
imported after absl's `app.run` has parsed flags, TF 2.13's `distribute/combinations.py` runs an
`absl.app.call_after_init` callback mid-import that creates the eager context before TF2
behaviour is enabled; that context's context-switch stack lacks the eager entry, so traced
`a == b` silently returns the Python bool `a is b` (False) and the road-edge argmin found no
segment (wrong off-road rate and road-edge likelihood).
"""
from __future__ import annotations

import tensorflow as tf
from waymo_open_dataset.utils import box_utils
from waymo_open_dataset.utils import geometry_utils
from waymo_open_dataset.wdl_limited.sim_agents_metrics import interaction_features as official_ix
from waymo_open_dataset.wdl_limited.sim_agents_metrics import map_metric_features
from waymo_open_dataset.wdl_limited.sim_agents_metrics import trajectory_features

from motion_sim.metrics import pruned_search

CURRENT = 10
STEP_SECONDS = 0.1
BIG = 1e10  # the official EXTREMELY_LARGE_DISTANCE
COLLISION_THRESHOLD = official_ix.COLLISION_DISTANCE_THRESHOLD
OFFROAD_THRESHOLD = map_metric_features.OFFROAD_DISTANCE_THRESHOLD
# Segment groups (`scenario_arrays.GROUP_SIZE` segments each) scored per query step
# (`pruned_search`). Exactness is checked on every call (the best score found must beat the
# bound of every other group); a miss makes the caller retry with a larger budget.
# (per chunk, per step) road-edge groups searched. Per-step need on the shared scenarios: <= 9.
EDGE_GROUPS = (64, 32, 12)
# Steps per call whose road-edge search is repeated over all their chunk's level-1 groups.
EDGE_RETRY_STEPS = 256
# Red-light crossings needing a nearest-lane search (all rows and steps of a call), and lane
# groups searched per such query.
LANE_QUERIES = 256
# Objects per (evaluated agent, step) whose exact box distance is computed (the rest are
# bounded by their circumradii; see `distance_to_nearest_object`).
NEAREST_OBJECTS = 6
LANE_GROUPS = 16
_Z_STRETCH = 3.0  # official map_metric_features._Z_STRETCH_FACTOR
_PRUNE_MARGIN = 1e-3  # metres of slack for float32 rounding in the search bounds


def kinematics(x, y, z, heading, dt, dt2):
  """Official `trajectory_features.compute_kinematic_features`, XLA-safe.

  `dt` and `dt2` (= float32(0.1 ** 2), as the official Python-float maths gives) are passed
  as tensors: with them as constants XLA rewrites the divisions (e.g. into multiplications by
  reciprocals), which changes float32 rounding -- enough to move values that sit exactly on a
  histogram edge (constant-velocity rollouts have zero acceleration, an edge of the 2023 bins).
  """
  dpos = trajectory_features.central_diff(tf.stack([x, y, z], axis=0), pad_value=float('nan'))
  speed = tf.norm(dpos, axis=0) / dt
  accel = trajectory_features.central_diff(speed, pad_value=float('nan')) / dt
  wrap = trajectory_features._wrap_angle  # pylint: disable=protected-access
  dh_step = wrap(trajectory_features.central_diff(heading, pad_value=float('nan')) * 2) / 2
  d2h_step = wrap(trajectory_features.central_diff(dh_step, pad_value=float('nan')) * 2) / 2
  return speed, accel, dh_step / dt, d2h_step / dt2


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


def distance_to_nearest_object(xyzh, valid, size, num_eval, scale=1):
  """Official `compute_distance_to_nearest_object` on steps 11..90.

  Only the NEAREST_OBJECTS * scale objects with the smallest lower bound (centre distance
  minus both boxes' circumradii) get the exact box-to-box distance; the result is exact when
  the best distance found beats the bound of every object left out (checked, returned).

  Args:
    xyzh: [A, T, 4] float32 x, y, z, heading (T steps, any number: steps are independent).
    valid: [A, T] bool.
    size: [A, 3] float32 length, width, height.
    num_eval: E; evaluated agents are rows 0..E-1.
    scale: multiplies the number of objects scored exactly.

  Returns:
    ([E, T] float32 signed distances (1e10 when nothing valid), [] bool exact).
  """
  num_agents, num_steps, _ = xyzh.shape
  shrink = tf.minimum(size[:, 0], size[:, 1]) * official_ix.CORNER_ROUNDING_FACTOR / 2.  # [A]
  length, width = size[:, 0] - 2. * shrink, size[:, 1] - 2. * shrink
  corners = tf.transpose(_bottom_corners_2d(xyzh, length, width), [1, 0, 2, 3])  # [T, A, 4, 2]
  # Lower bound of the official distance of every (evaluated, other) pair: [T, E, A].
  xy = tf.transpose(xyzh[..., :2], [1, 0, 2])
  reach = 0.5 * tf.sqrt(length * length + width * width) + shrink  # circumradius + shrink
  centre_dist = tf.norm(xy[:, :num_eval, tf.newaxis] - xy[:, tf.newaxis], axis=-1)
  lower = centre_dist - reach[:num_eval, tf.newaxis] - reach[tf.newaxis]
  valid_t = tf.transpose(valid)
  pair_ok = (valid_t[:, :num_eval, tf.newaxis] & valid_t[:, tf.newaxis]
             & ~tf.eye(num_eval, num_agents, dtype=tf.bool)[tf.newaxis])
  lower = tf.where(pair_ok, lower, BIG)
  other, next_bound = pruned_search.select_smallest(lower, NEAREST_OBJECTS * scale)  # [T, E, k]
  num_other = other.shape[-1]
  eval_c = tf.broadcast_to(corners[:, :num_eval, tf.newaxis],
                           [num_steps, num_eval, num_other, 4, 2])
  other_c = tf.gather(corners, other, batch_dims=1)
  mink = geometry_utils.minkowski_sum_of_box_and_box_points(
      tf.reshape(eval_c, [-1, 4, 2]), -1.0 * tf.reshape(other_c, [-1, 4, 2]))
  dist = geometry_utils.signed_distance_from_point_to_convex_polygon(
      tf.zeros_like(mink[:, 0, :]), mink)
  dist = tf.reshape(dist, [num_steps, num_eval, num_other])
  dist -= shrink[tf.newaxis, :num_eval, tf.newaxis]
  dist -= tf.gather(shrink, other)
  dist = tf.where(tf.gather(pair_ok, other, batch_dims=2), dist, BIG)
  best = tf.reduce_min(dist, axis=-1)  # [T, E]
  exact = tf.reduce_all((next_bound >= BIG) | (next_bound > best + _PRUNE_MARGIN))
  return tf.transpose(best), exact


def time_to_collision(xyh, speed, valid, size, num_eval):
  """Official `compute_time_to_collision_with_object_in_front` on steps 11..90.

  Every step is independent once the speeds are known, so callers may fold several samples
  into the step axis.

  Args:
    xyh: [A, T, 3] float32 x, y, heading of the simulated steps.
    speed: [A, T] float32 linear speed (`kinematics` with z = 0, as the official code).
    valid: [A, T] bool.
    size: [A, 3] float32.
    num_eval: E.

  Returns:
    [E, T] float32 seconds, capped at 5.
  """
  # Time-major like the official code: [T, A, ...].
  xy = tf.transpose(xyh[..., :2], [1, 0, 2])
  yaw = tf.transpose(xyh[..., 2])[..., tf.newaxis]
  speed = tf.transpose(speed)
  valid = tf.transpose(valid)
  sizes = tf.broadcast_to(size[tf.newaxis, :, :2], [xy.shape[0], size.shape[0], 2])
  ego_xy, ego_yaw, ego_sizes, ego_speed = (xy[:, :num_eval], yaw[:, :num_eval],
                                           sizes[:, :num_eval], speed[:, :num_eval])
  yaw_diff = tf.abs(yaw[:, tf.newaxis] - ego_yaw[:, :, tf.newaxis])
  # |cos| and |sin| of the yaw difference from per-object cos/sin (angle-difference
  # identities): one sin/cos per object and step instead of per pair.
  cos_t, sin_t = tf.cos(yaw), tf.sin(yaw)  # [T, A, 1]
  cos_o, sin_o = cos_t[:, tf.newaxis], sin_t[:, tf.newaxis]
  cos_e, sin_e = cos_t[:, :num_eval, tf.newaxis], sin_t[:, :num_eval, tf.newaxis]
  cos = tf.abs(cos_o * cos_e + sin_o * sin_e)
  sin = tf.abs(sin_o * cos_e - cos_o * sin_e)
  other_long = geometry_utils.dot_product_2d(sizes[:, tf.newaxis] / 2.0,
                                             tf.concat([cos, sin], axis=-1))
  other_lat = geometry_utils.dot_product_2d(sizes[:, tf.newaxis] / 2.0,
                                            tf.concat([sin, cos], axis=-1))
  rel_xy = geometry_utils.rotate_2d_points(xy[:, tf.newaxis] - ego_xy[:, :, tf.newaxis], -ego_yaw)
  long_dist = rel_xy[..., 0] - ego_sizes[:, :, tf.newaxis, 0] / 2.0 - other_long
  lat_overlap = tf.abs(rel_xy[..., 1]) - ego_sizes[:, :, tf.newaxis, 1] / 2.0 - other_lat
  yaw_diff = yaw_diff[..., 0]
  following = ((long_dist > 0.0) & (yaw_diff <= official_ix.MAX_HEADING_DIFF) & (lat_overlap < 0.0)
               & ((lat_overlap < -official_ix.SMALL_OVERLAP_THRESHOLD)
                  | (yaw_diff <= official_ix.MAX_HEADING_DIFF_FOR_SMALL_OVERLAP)))
  mask = valid[:, tf.newaxis] & following
  masked = long_dist + (1.0 - tf.cast(mask, tf.float32)) * BIG
  ahead = tf.argmin(masked, axis=-1)
  dist_ahead = tf.gather(masked, ahead, batch_dims=2)
  speed_ahead = tf.gather(speed, ahead, batch_dims=1)
  rel_speed = ego_speed - speed_ahead
  ttc = tf.where(rel_speed > 0.0,
                 tf.minimum(dist_ahead / rel_speed, official_ix.MAXIMUM_TIME_TO_COLLISION),
                 official_ix.MAXIMUM_TIME_TO_COLLISION)
  return tf.transpose(ttc)


def _edge_scores(q, start, end):
  """Official road-edge terms of points q [..., 3] vs segments [..., 3] (broadcasting).

  Returns (z-stretched 3-D distance used for the argmin, 2-D distance, rel_t, side sign n).
  """
  start_to_point = q - start
  start_to_end = end - start
  rel_t = tf.math.divide_no_nan(
      geometry_utils.dot_product_2d(start_to_point[..., :2], start_to_end[..., :2]),
      geometry_utils.dot_product_2d(start_to_end[..., :2], start_to_end[..., :2]))
  n = tf.sign(geometry_utils.cross_product_2d(start_to_point[..., :2], start_to_end[..., :2]))
  seg_to_point = start_to_point - start_to_end * tf.clip_by_value(rel_t, 0.0, 1.0)[..., tf.newaxis]
  d3 = tf.norm(seg_to_point * tf.constant([1.0, 1.0, _Z_STRETCH]), axis=-1)
  return d3, tf.norm(seg_to_point[..., :2], axis=-1), rel_t, n


def distance_to_road_edge(xyzh, valid, size, num_eval, edges, scale=1, num_samples=1):
  """Official `compute_distance_to_road_edge` on steps 11..90, searched by segment groups.

  Args:
    xyzh: [A, 1 + T, 4] float32 current + future steps; valid: [A, 1 + T] bool; size: [A, 3];
      num_eval: E.
    edges: dict of the `ScenarioArrays.edge_*` tensors (S segments, G groups).
    scale: multiplies the number of groups searched.

  Returns:
    ([E, T] float32 signed distance, positive = off-road; [] bool search was exact).
  """
  num_steps = xyzh.shape[1] - 1
  e_xyzh = xyzh[:num_eval]
  e_size = tf.broadcast_to(size[:num_eval, tf.newaxis], [num_eval, num_steps + 1, 3])
  boxes = tf.concat([e_xyzh[..., :3], e_size, e_xyzh[..., 3:]], axis=-1)
  corners = box_utils.get_upright_3d_box_corners(tf.reshape(boxes, [-1, 7]))[:, :4]
  corners = tf.reshape(corners, [num_eval, num_steps + 1, 4, 3])
  corners = _park_invalid(corners, valid[:num_eval])
  valid = valid[:, 1:]
  start, end, seg_ok = edges['edge_start'], edges['edge_end'], edges['edge_valid']
  groups, next_bound, wide_groups, wide_bound = pruned_search.nearest_groups(
      corners, edges['edge_group_box'], [k * scale for k in EDGE_GROUPS], num_samples)
  member = edges['edge_groups']
  # The argmin runs on squared scores (sqrt is monotonic, so min and argmin are the same up
  # to ties that the rounding of sqrt would create) and a segment's direction and length are
  # computed once per call, not once per candidate.
  direction = end - start
  length2 = tf.where(seg_ok, geometry_utils.dot_product_2d(direction[:, :2], direction[:, :2]),
                     0.0)

  def nearest(points, cand):
    """(segment [Q, 4], its z-stretched distance [Q, 4]) of points [Q, 4, 3] among cand [Q, K]."""
    c_start = tf.gather(start, cand)[:, tf.newaxis]  # [Q, 1, K, 3]
    c_dir = tf.gather(direction, cand)[:, tf.newaxis]
    start_to_point = points[:, :, tf.newaxis] - c_start  # [Q, 4, K, 3]
    rel_t = tf.math.divide_no_nan(
        geometry_utils.dot_product_2d(start_to_point[..., :2], c_dir[..., :2]),
        tf.gather(length2, cand)[:, tf.newaxis])
    offset = start_to_point - c_dir * tf.clip_by_value(rel_t, 0.0, 1.0)[..., tf.newaxis]
    d3_sq = (offset[..., 0] * offset[..., 0] + offset[..., 1] * offset[..., 1]
             + (_Z_STRETCH * offset[..., 2]) * (_Z_STRETCH * offset[..., 2]))
    d3_sq = tf.where(tf.gather(seg_ok, cand)[:, tf.newaxis], d3_sq, BIG)
    seg, best = pruned_search.first_argmin(d3_sq,
                                           tf.broadcast_to(cand[:, tf.newaxis], d3_sq.shape))
    return seg, tf.sqrt(best)

  num_queries = num_eval * num_steps
  flat_corners = tf.reshape(corners, [num_queries, 4, 3])
  seg, best = nearest(flat_corners,
                      tf.reshape(tf.gather(member, groups), [num_queries, -1]))
  # Every segment outside the searched groups scores >= its 2-D distance >= the bound. Steps
  # where that does not settle it (e.g. mid-intersection, many edges about as far) are searched
  # again among all the level-1 groups of their chunk, packed into EDGE_RETRY_STEPS slots.
  miss = ~(tf.reshape(next_bound, [-1]) > tf.reduce_max(best, axis=-1) + _PRUNE_MARGIN)
  query, used, fits = pruned_search.compact(miss, EDGE_RETRY_STEPS * scale)
  wide = tf.reshape(tf.gather(member, tf.gather(tf.reshape(wide_groups, [num_queries, -1]),
                                                  query)), [query.shape[0], -1])
  seg2, best2 = nearest(tf.gather(flat_corners, query), wide)
  exact = fits & tf.reduce_all(
      ~used | (tf.gather(tf.reshape(wide_bound, [-1]), query) > tf.reduce_max(best2, axis=-1)
               + _PRUNE_MARGIN))
  # Unused slots write to a dropped extra row.
  target = tf.where(used, query, num_queries)[:, tf.newaxis]
  seg = tf.tensor_scatter_nd_update(tf.concat([seg, seg[:1]], axis=0), target, seg2)
  seg = tf.reshape(seg[:num_queries], [num_eval, num_steps, 4])
  _, d2, rel_t, n = _edge_scores(corners, tf.gather(start, seg), tf.gather(end, seg))

  def neighbour_sign(idx):
    ns, ne = tf.gather(start, idx), tf.gather(end, idx)
    return tf.sign(geometry_utils.cross_product_2d(corners[..., :2] - ns[..., :2],
                                                   ne[..., :2] - ns[..., :2]))

  n_prior = neighbour_sign(tf.gather(edges['edge_prior'], seg))
  n_next = neighbour_sign(tf.gather(edges['edge_next'], seg))
  before = tf.where(tf.gather(edges['edge_convex_before'], seg), tf.maximum(n, n_prior),
                    tf.minimum(n, n_prior))
  after = tf.where(tf.gather(edges['edge_convex_after'], seg), tf.maximum(n, n_next),
                   tf.minimum(n, n_next))
  sign = tf.where((rel_t < 0.0) & tf.gather(edges['edge_prior_valid'], seg), before,
                  tf.where((rel_t > 1.0) & tf.gather(edges['edge_next_valid'], seg), after, n))
  dist = tf.reduce_max(sign * d2, axis=-1)
  return tf.where(valid[:num_eval], dist, -BIG), exact


def red_light_violation(xy_full, valid, num_rows, lanes, scale=1):
  """Official `compute_red_light_violation` on steps 11..90.

  A violation needs a red light whose stop line the agent crosses on that step *and* the
  light's lane being the agent's nearest lane. Crossings are cheap to test for every step;
  the nearest-lane search (the costly part) runs only for the few steps with a red crossing,
  packed into LANE_QUERIES * scale slots (more -> not exact, the caller retries larger).

  Args:
    xy_full: [N, 91, 2] float32 centres (step 10 is needed for crossings at step 11).
    valid: [N, T] bool future validity.
    num_rows: N (every row is evaluated).
    lanes: dict of the `ScenarioArrays.lane_*` and `tl_*` tensors.
    scale: multiplies the query slots and the number of lane groups searched.

  Returns:
    ([N, T] bool violation, [] bool search was exact).
  """
  xy = xy_full[:num_rows, CURRENT:]  # [N, 1 + T, 2]
  num_steps = xy.shape[1] - 1
  seg_start, seg_dir = lanes['tl_seg_start'][CURRENT:], lanes['tl_seg_dir'][CURRENT:]
  start_to_xy = xy[:, :, tf.newaxis] - seg_start[tf.newaxis]
  obj_t = tf.math.divide_no_nan(geometry_utils.dot_product_2d(start_to_xy, seg_dir[tf.newaxis]),
                                geometry_utils.dot_product_2d(seg_dir, seg_dir)[tf.newaxis])
  stop_t = lanes['tl_stop_t'][tf.newaxis, CURRENT:]
  crossed = (obj_t < stop_t)[:, :-1] & (obj_t > stop_t)[:, 1:]
  red = lanes['tl_red'][CURRENT + 1:]
  candidate = valid[:num_rows, :, tf.newaxis] & red[tf.newaxis] & crossed  # [N, T, K]
  num_lights = candidate.shape[-1]
  candidate = tf.reshape(candidate, [-1, num_lights])
  query, used, fits = pruned_search.compact(tf.reduce_any(candidate, axis=-1),
                                            LANE_QUERIES * scale)
  pts = tf.gather(tf.reshape(xy[:, 1:], [-1, 2]), query)  # [Q, 2]
  start, end, seg_ok = lanes['lane_start'], lanes['lane_end'], lanes['lane_valid']
  # The official nearest-lane score is |(q - s) + t (e - s)| (sic): the distance from q to a
  # point of the segment mirrored through its start, [s, 2s - e], whose box bounds the group.
  groups, next_bound = pruned_search.nearest_groups_of_points(pts, lanes['lane_group_box'],
                                                 LANE_GROUPS * scale)
  cand = tf.reshape(tf.gather(lanes['lane_groups'], groups), [pts.shape[0], -1])
  loose = tf.broadcast_to(lanes['lane_loose'], [pts.shape[0], lanes['lane_loose'].shape[0]])
  cand = tf.concat([cand, loose], axis=-1)  # [Q, K]
  s, e = tf.gather(start, cand), tf.gather(end, cand)
  start_to_point = pts[:, tf.newaxis] - s
  start_to_end = e - s
  rel_t = tf.math.divide_no_nan(geometry_utils.dot_product_2d(start_to_point, start_to_end),
                                geometry_utils.dot_product_2d(start_to_end, start_to_end))
  score = tf.norm(start_to_point + start_to_end * tf.clip_by_value(rel_t, 0.0, 1.0)[..., tf.newaxis],
                  axis=-1)
  score = tf.where(tf.gather(seg_ok, cand), score, BIG)
  seg, best = pruned_search.first_argmin(score, cand)
  exact = fits & tf.reduce_all(~used | (next_bound > best + _PRUNE_MARGIN))
  lane = tf.gather(lanes['lane_id'], seg)  # [Q]
  tl_lane = tf.gather(lanes['tl_lane_id'][CURRENT + 1:], query % num_steps)  # [Q, K]
  hit = tf.reduce_any(tf.equal(lane[:, tf.newaxis], tl_lane) & tf.gather(candidate, query),
                      axis=-1) & used
  violation = tf.math.unsorted_segment_max(tf.cast(hit, tf.int32), query, candidate.shape[0]) > 0
  return tf.reshape(violation, [num_rows, num_steps]), exact


def _fold_steps(x):
  """[S, A, T, ...] -> [A, S * T, ...]: samples side by side on the step axis."""
  x = tf.experimental.numpy.swapaxes(x, 0, 1)
  return tf.reshape(x, [x.shape[0], -1] + x.shape[3:].as_list())


def _unfold_steps(x, num_samples):
  """[E, S * T] -> [S, E, T]."""
  x = tf.reshape(x, [x.shape[0], num_samples, -1])
  return tf.transpose(x, [1, 0, 2])


def _fold_rows(x, num_eval):
  """[S, A, ...] -> [S * E, ...]: every (sample, evaluated agent) pair one row."""
  x = x[:, :num_eval]
  return tf.reshape(x, [-1] + x.shape[2:].as_list())


def map_and_interaction_features(xyzh, valid, speed, size, num_eval, tables, scale=1,
                                 has_red=True):
  """Per-step object, collision-time, road-edge and red-light features of all samples at once.

  Every feature is independent per step (object distance, time to collision) or per evaluated
  agent (map searches), so the samples are folded into the step / row axis: one set of large
  ops instead of a loop of small ones per sample (op count, not arithmetic, bounded the
  per-sample loop on CPU).

  Args:
    xyzh: [S, A, 91, 4] float32 samples (the log and the rollouts).
    valid: [S, A, 91] bool.
    speed: [S, A, 91] float32 `kinematics` speed with z = 0 (official time-to-collision input).
    size: [A, 3]; num_eval: E.
    tables: dict of the scenario's road-edge / lane / light tensors.
    scale: multiplies the number of map segment groups searched per step.
    has_red: False when no light is red on any simulated step: no violation is possible, so
      the lane search is skipped (static: part of the compiled shape).

  Returns:
    dict of [S, E, 80] features and the [] bool `exact` flag of the pruned searches.
  """
  num_samples, _, num_steps, _ = xyzh.shape
  num_future = num_steps - CURRENT - 1
  future, future_valid = xyzh[:, :, CURRENT + 1:], valid[:, :, CURRENT + 1:]
  steps_valid = _fold_steps(future_valid)
  nearest, nearest_exact = distance_to_nearest_object(_fold_steps(future), steps_valid, size,
                                                      num_eval, scale)
  ttc = time_to_collision(_fold_steps(tf.gather(future, [0, 1, 3], axis=-1)),
                          _fold_steps(speed[:, :, CURRENT + 1:]), steps_valid, size, num_eval)
  rows = num_samples * num_eval
  row_size = tf.tile(size[:num_eval], [num_samples, 1])
  edge_dist, edge_exact = distance_to_road_edge(
      _fold_rows(xyzh[:, :, CURRENT:], num_eval), _fold_rows(valid[:, :, CURRENT:], num_eval),
      row_size, rows, tables, scale, num_samples)
  if has_red:
    red, red_exact = red_light_violation(_fold_rows(xyzh[..., :2], num_eval),
                                         _fold_rows(future_valid, num_eval), rows, tables, scale)
  else:
    red, red_exact = tf.zeros([rows, num_future], tf.bool), tf.constant(True)
  per_row = lambda x: tf.reshape(x, [num_samples, num_eval, num_future])
  return dict(
      distance_to_nearest_object=_unfold_steps(nearest, num_samples),
      time_to_collision=_unfold_steps(ttc, num_samples),
      distance_to_road_edge=per_row(edge_dist),
      traffic_light_violation=per_row(red),
      exact=nearest_exact & edge_exact & red_exact,
  )
