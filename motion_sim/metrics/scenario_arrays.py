"""Scenario + rollouts -> the padded numpy arrays the fast (XLA) metrics consume.

Everything here mirrors how the official `metric_features.compute_metric_features` reads a
`Scenario`: float32 states, box sizes frozen at the current step for the simulated future,
road edges and surface-street lanes tensorised with the same zero padding (whose quirks -- e.g. a
lane's last point joined to the padding origin -- change the official result and so are kept).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from waymo_open_dataset.protos import map_pb2, scenario_pb2, sim_agents_submission_pb2
from waymo_open_dataset.utils.sim_agents import submission_specs

from motion_sim.data import scenario_decoder
from motion_sim.metrics import rollout_checks, rollout_decode

_CHALLENGE = submission_specs.ChallengeType.SIM_AGENTS
_SPEC = submission_specs.get_submission_config(_CHALLENGE)
CURRENT = _SPEC.current_time_index  # 10
NUM_STEPS = CURRENT + 1 + _SPEC.n_simulation_steps  # 91
# Map segments are searched by groups of GROUP_SIZE consecutive segments of the official
# (polyline-major) order: consecutive segments are spatially compact, so a group's bounding box
# gives a tight lower bound on the distance to any of its members.
GROUP_SIZE = 16


class ShapeBucket(NamedTuple):
    """Padded sizes of one compiled shape of the fast metrics (one XLA compilation each).

    Attributes:
      agents: A, sim-agent rows.
      edge_segments: S, road-edge segment rows (at least one stays invalid, for group padding).
      lane_segments: L, surface-street lane segment rows.
      lights: K, traffic-signal slots per step.
      eval_slots: E rows of evaluated agents in the features (the SDC + tracks_to_predict: <= 9 in
        WOMD); the evaluated agents are looped over, so unused slots cost no search work.
    """

    agents: int
    edge_segments: int
    lane_segments: int
    lights: int
    eval_slots: int


# The fixed set of compiled shapes, smallest first: a scenario takes the first bucket that holds
# every one of its sizes, so a run over any number of distinct scenarios compiles at most
# len(BUCKETS) times. Work grows with agents (interaction features) and much less with map size
# (group search), so agents step by 2x and the map by 2x per two agent steps.
BUCKETS = (
    ShapeBucket(agents=32, edge_segments=4096, lane_segments=8192, lights=16, eval_slots=16),
    ShapeBucket(agents=64, edge_segments=8192, lane_segments=16384, lights=32, eval_slots=16),
    ShapeBucket(agents=128, edge_segments=8192, lane_segments=16384, lights=32, eval_slots=16),
    ShapeBucket(agents=256, edge_segments=16384, lane_segments=32768, lights=64, eval_slots=16),
    ShapeBucket(agents=512, edge_segments=32768, lane_segments=65536, lights=128, eval_slots=16),
)


def _next_pow2(n: int, floor: int) -> int:
    return max(floor, 1 << max(0, int(n - 1).bit_length()))


def choose_bucket(
    agents: int, edge_segments: int, lane_segments: int, lights: int, num_eval: int
) -> ShapeBucket:
    """The first of BUCKETS holding every size; beyond the largest, every size rounded up to a
    power of two (a shape outside the fixed set: one more compilation, logged by the caller)."""
    sizes = ShapeBucket(agents, edge_segments, lane_segments, lights, num_eval)
    for bucket in BUCKETS:
        if all(n <= b for n, b in zip(sizes, bucket)):
            return bucket
    return ShapeBucket(*(_next_pow2(n, b) for n, b in zip(sizes, BUCKETS[-1])))


_SURFACE_STREET = map_pb2.LaneCenter.LaneType.TYPE_SURFACE_STREET
# ObjectState fields read into `ScenarioArrays` (x, y, z, heading, then the box size).
_STATE_NAMES = ("center_x", "center_y", "center_z", "heading", "length", "width", "height")


class ScenarioArrays(NamedTuple):
    """Log data of one scenario, padded to a `ShapeBucket` (A agents, S road-edge and L lane
    segments, K lights).

    Attributes:
      scenario_id: str.
      object_id: [A] int64 sim-agent ids; the E evaluated agents first (sorted ids), -1 padding.
      num_eval: int E, number of evaluated agents (SDC + tracks_to_predict).
      agent_mask: [A] bool, slot holds a real sim agent.
      is_vehicle: [A] bool.
      xyz: [A, 91, 3] float32 logged centre.
      heading: [A, 91] float32 logged yaw.
      size: [A, 3] float32 length, width, height at the current step (used for the future).
      size_hist: [A, 11, 3] float32 logged sizes of the history steps.
      valid: [A, 91] bool logged validity (False for padding).
      edge_start, edge_end: [S, 3] float32 road-edge segment end points.
      edge_valid: [S] bool (False for padding).
      edge_prior, edge_next: [S] int32 neighbour segment used for the sign at the ends.
      edge_prior_valid, edge_next_valid: [S] bool.
      edge_convex_before, edge_convex_after: [S] bool local convexity with that neighbour.
      lane_start, lane_end: [L, 2] float32 surface-street lane segments.
      lane_valid: [L] bool.
      lane_id: [L] int32 map feature id of the lane holding the segment.
      edge_groups: [S / GROUP_SIZE, GROUP_SIZE] int32 member segments (padding -> an invalid one).
      edge_group_box: [S / GROUP_SIZE, 4] float32 xmin, ymin, xmax, ymax of the members.
      tl_lane_id: [91, K] int32 controlled lane per signal slot.
      tl_red: [91, K] bool, slot is a stop/arrow-stop on a known surface-street lane.
      tl_seg_start: [91, K, 2] float32 start of the lane segment nearest the stop point.
      tl_seg_dir: [91, K, 2] float32 that segment's end - start.
      tl_stop_t: [91, K] float32 stop point's relative position along that segment.
      has_traffic_lights: bool; False -> the official code reports no violations at all.
      bucket: the `ShapeBucket` the arrays are padded to (A, S, L, K above).
    """

    scenario_id: str
    object_id: np.ndarray
    num_eval: int
    agent_mask: np.ndarray
    is_vehicle: np.ndarray
    xyz: np.ndarray
    heading: np.ndarray
    size: np.ndarray
    size_hist: np.ndarray
    valid: np.ndarray
    edge_start: np.ndarray
    edge_end: np.ndarray
    edge_valid: np.ndarray
    edge_prior: np.ndarray
    edge_next: np.ndarray
    edge_prior_valid: np.ndarray
    edge_next_valid: np.ndarray
    edge_convex_before: np.ndarray
    edge_convex_after: np.ndarray
    lane_start: np.ndarray
    lane_end: np.ndarray
    lane_valid: np.ndarray
    lane_id: np.ndarray
    edge_groups: np.ndarray
    edge_group_box: np.ndarray
    tl_lane_id: np.ndarray
    tl_red: np.ndarray
    tl_seg_start: np.ndarray
    tl_seg_dir: np.ndarray
    tl_stop_t: np.ndarray
    has_traffic_lights: bool
    bucket: ShapeBucket


def _pad(a: np.ndarray, n: int, value=0) -> np.ndarray:
    pad = [(0, n - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    return np.pad(a, pad, constant_values=value)


def _padded_polylines(polylines: list) -> tuple[np.ndarray, list[int]]:
    """Like official `tensorize_polylines`: [N, max_len, 4] xyz+valid, zero padded, <2 points
    dropped; polylines: [P, 3] float64 point arrays."""
    kept = [i for i, p in enumerate(polylines) if len(p) >= 2]
    max_len = max((len(polylines[i]) for i in kept), default=2)
    out = np.zeros((len(kept), max_len, 4), np.float32)
    for row, i in enumerate(kept):
        pts = polylines[i].astype(np.float32)
        out[row, : len(pts), :3] = pts
        out[row, : len(pts), 3] = 1.0
    return out, kept


def _groups(
    members: np.ndarray, xy_points: list, invalid_index: int, num_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Splits `members` (ascending segment indices) into padded groups and their boxes.

    Args:
      members: [n] int segment indices.
      xy_points: list of [n, 2] arrays of points each member spans (box = their extent).
      invalid_index: index of an invalid segment, used to pad.
      num_groups: G >= n / GROUP_SIZE.

    Returns:
      ([G, GROUP_SIZE] int32 groups, [G, 4] float32 boxes; empty groups get an infinitely far box).
    """
    groups = np.full(num_groups * GROUP_SIZE, invalid_index, np.int32)
    groups[: len(members)] = members
    box = np.tile(np.array([[np.inf, np.inf, -np.inf, -np.inf]], np.float32), (num_groups, 1))
    for pts in xy_points:
        padded = np.full((num_groups * GROUP_SIZE, 2), np.nan, np.float32)
        padded[: len(members)] = pts
        padded = padded.reshape(num_groups, GROUP_SIZE, 2)
        with np.errstate(invalid="ignore"):
            box[:, :2] = np.fmin(
                box[:, :2], np.nanmin(np.where(np.isnan(padded), np.inf, padded), 1)
            )
            box[:, 2:] = np.fmax(
                box[:, 2:], np.nanmax(np.where(np.isnan(padded), -np.inf, padded), 1)
            )
    # Empty groups: a box far away so their lower bound is huge.
    empty = ~np.isfinite(box).all(axis=1)
    box[empty] = [1e9, 1e9, 1e9, 1e9]
    return groups.reshape(num_groups, GROUP_SIZE), box


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _road_edge_tables(decoded: dict, source: str) -> dict:
    """Unpadded road-edge segment tables (`_pad_edges` pads them to a bucket) of a
    `scenario_decoder.decode_scenario_arrays` result."""
    # Feature order (rows ascending), as the official code reads the map.
    polylines = list(scenario_decoder.polylines_by_feature(decoded, ["road_edge"]).values())
    pts, kept = _padded_polylines(polylines)
    if not kept:
        raise rollout_checks.RolloutError(
            source, "scenario has no road edges (official metrics need them)"
        )
    num_lines, num_pts, _ = pts.shape
    cyclic = np.array(
        [
            np.sum(np.square(pts[i, 0, :3] - pts[i, len(polylines[k]) - 1, :3])) < 1.0
            for i, k in enumerate(kept)
        ]
    )
    point_valid = pts[:, :, 3] > 0
    seg_valid = point_valid[:, :-1] & point_valid[:, 1:]
    num_segs = num_pts - 1
    ste = pts[:, 1:, :2] - pts[:, :-1, :2]
    ste_pad = np.concatenate([ste[:, -1:], ste, ste[:, :1]], axis=1)
    convex = _cross(ste_pad[:, :-1], ste_pad[:, 1:]) > 0.0  # [N, S+1]
    j = np.arange(num_segs)
    prior = np.where(j[None] > 0, j[None] - 1, np.where(cyclic[:, None], num_segs - 1, 0))
    nxt = np.where(j[None] < num_segs - 1, j[None] + 1, np.where(cyclic[:, None], 0, num_segs - 1))
    rows = np.arange(num_lines)[:, None]
    prior_valid = seg_valid[rows, prior]
    next_valid = seg_valid[rows, nxt]
    # Compact to the valid segments, keeping the official flat (polyline-major) order so argmin
    # ties resolve the same way.
    flat_valid = seg_valid.reshape(-1)
    compact = np.cumsum(flat_valid) - 1
    flat_prior = (rows * num_segs + prior).reshape(-1)
    flat_next = (rows * num_segs + nxt).reshape(-1)
    sel = np.nonzero(flat_valid)[0]
    n = len(sel)
    pv = prior_valid.reshape(-1)[sel]
    nv = next_valid.reshape(-1)[sel]
    return dict(
        edge_start=pts[:, :-1, :3].reshape(-1, 3)[sel],
        edge_end=pts[:, 1:, :3].reshape(-1, 3)[sel],
        edge_valid=np.ones(n, bool),
        edge_prior=np.where(pv, compact[flat_prior[sel]], 0).astype(np.int32),
        edge_next=np.where(nv, compact[flat_next[sel]], 0).astype(np.int32),
        edge_prior_valid=pv,
        edge_next_valid=nv,
        edge_convex_before=convex[:, :-1].reshape(-1)[sel],
        edge_convex_after=convex[:, 1:].reshape(-1)[sel],
    )


def _pad_edges(edges: dict, size: int) -> dict:
    """Pads the road-edge tables to `size` rows (> their count) and groups them."""
    n = len(edges["edge_valid"])
    out = {k: _pad(v, size, False if v.dtype == bool else 0) for k, v in edges.items()}
    out["edge_groups"], out["edge_group_box"] = _groups(
        np.arange(n), [edges["edge_start"][:, :2], edges["edge_end"][:, :2]], n, size // GROUP_SIZE
    )
    return out


def _lane_and_light_tables(scenario: scenario_pb2.Scenario, decoded: dict) -> dict:
    """Unpadded lane segment and signal tables (`_pad_lanes_and_lights` pads them)."""
    points = scenario_decoder.polylines_by_feature(decoded, ["lane"])
    lanes, ids = [], []
    for row, f in enumerate(scenario.map_features):
        if row in points and f.lane.type == _SURFACE_STREET:
            lanes.append(points[row])
            ids.append(f.id)
    signals = [list(d.lane_states) for d in scenario.dynamic_map_states]
    pts, kept = _padded_polylines(lanes)
    has_lights = bool(lanes) and bool(signals) and bool(kept)
    if not has_lights:
        pts = np.zeros((1, 2, 4), np.float32)
        kept = []
    lane_ids = np.array([ids[i] for i in kept] or [-2], np.int32)
    # The official nearest-lane search treats a segment as valid when its *start* point is, so a
    # lane's last point is joined to the (0, 0) padding; kept on purpose to match its results.
    seg_valid = (pts[:, :-1, 3] > 0).reshape(-1)
    starts = pts[:, :-1, :2].reshape(-1, 2)
    ends = pts[:, 1:, :2].reshape(-1, 2)
    seg_lane = np.repeat(lane_ids, pts.shape[1] - 1)
    sel = np.nonzero(seg_valid)[0]
    out = dict(
        lane_start=starts[sel],
        lane_end=ends[sel],
        lane_valid=np.ones(len(sel), bool),
        lane_id=seg_lane[sel],
        has_traffic_lights=has_lights,
    )
    if not has_lights:
        out.update(
            tl_lane_id=np.full((NUM_STEPS, 1), -1, np.int32),
            tl_red=np.zeros((NUM_STEPS, 1), bool),
            tl_seg_start=np.zeros((NUM_STEPS, 1, 2), np.float32),
            tl_seg_dir=np.zeros((NUM_STEPS, 1, 2), np.float32),
            tl_stop_t=np.zeros((NUM_STEPS, 1), np.float32),
        )
        return out
    out.update(_stop_point_tables(signals, pts, lane_ids))
    return out


def _pad_lanes_and_lights(tables: dict, lane_size: int, lights: int) -> dict:
    """Pads the lane tables to `lane_size` rows and the signal slots to `lights` (never red)."""
    out = dict(tables)
    for k, value in (("lane_start", 0), ("lane_end", 0), ("lane_valid", False), ("lane_id", -2)):
        out[k] = _pad(tables[k], lane_size, value)
    for k, value in (
        ("tl_lane_id", -1),
        ("tl_red", False),
        ("tl_seg_start", 0),
        ("tl_seg_dir", 0),
        ("tl_stop_t", 0),
    ):
        a = np.swapaxes(tables[k], 0, 1)  # slot-major for _pad
        out[k] = np.ascontiguousarray(np.swapaxes(_pad(a, lights, value), 0, 1))
    return out


def _divide_no_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, np.float32(0), a / b).astype(np.float32)


def _stop_point_tables(signals: list, pts: np.ndarray, lane_ids: np.ndarray) -> dict:
    """Per step and signal: the controlled lane, red or not, and the lane segment nearest the
    stop point, as the official `compute_red_light_violation` builds them (same slot order as
    its `_tensorize_traffic_signals`, same float32 maths), in numpy: the official helpers run
    ~100 small eager ops, several ms per scenario, on what are mostly repeated stop points.
    """
    if len(signals) != NUM_STEPS:
        raise ValueError(f"expected {NUM_STEPS} dynamic map states, got {len(signals)}")
    slot_ids = list({state.lane for step in signals for state in step}) or [-1]
    slot_of = {lane: k for k, lane in enumerate(slot_ids)}
    states = np.zeros((NUM_STEPS, len(slot_ids)), np.int64)
    stop = np.zeros((NUM_STEPS, len(slot_ids), 2), np.float64)
    for t, step in enumerate(signals):
        for state in step:
            states[t, slot_of[state.lane]] = state.state
            stop[t, slot_of[state.lane]] = (state.stop_point.x, state.stop_point.y)
    stop = stop.astype(np.float32)
    ts_lane_id = np.broadcast_to(np.array(slot_ids, np.int32), states.shape)
    match = lane_ids[np.newaxis, np.newaxis] == ts_lane_id[..., np.newaxis]
    lane_index = match.argmax(axis=-1)
    stop_states = (
        map_pb2.TrafficSignalLaneState.State.LANE_STATE_ARROW_STOP,
        map_pb2.TrafficSignalLaneState.State.LANE_STATE_STOP,
    )
    red = np.isin(states, stop_states) & match.any(axis=-1)
    # The nearest segment of the lane to the stop point (official `_get_nearest_lane_segment_index`
    # on one lane), once per distinct (lane, stop point).
    keys = np.concatenate([lane_index[..., np.newaxis].astype(np.float32), stop], axis=-1)
    unique, inverse = np.unique(keys.reshape(-1, 3), axis=0, return_inverse=True)
    lanes = pts[unique[:, 0].astype(np.int64)]  # [U, P, 4]
    start, end = lanes[:, :-1, :2], lanes[:, 1:, :2]
    start_to_point = unique[:, np.newaxis, 1:] - start
    start_to_end = end - start
    rel_t = _divide_no_nan(
        np.sum(start_to_point * start_to_end, axis=-1), np.sum(start_to_end * start_to_end, axis=-1)
    )
    offset = start_to_point + start_to_end * np.clip(rel_t, 0, 1)[..., np.newaxis]
    distance = np.where(
        lanes[:, :-1, 3] > 0, np.sqrt(np.sum(offset * offset, axis=-1)), np.float32(1e10)
    )
    seg = distance.argmin(axis=-1)
    rows = np.arange(len(unique))
    seg_start = start[rows, seg][inverse.reshape(-1)].reshape(stop.shape)
    seg_dir = start_to_end[rows, seg][inverse.reshape(-1)].reshape(stop.shape)
    stop_t = _divide_no_nan(
        np.sum((stop - seg_start) * seg_dir, axis=-1), np.sum(seg_dir * seg_dir, axis=-1)
    )
    return dict(
        tl_lane_id=np.ascontiguousarray(ts_lane_id),
        tl_red=red,
        tl_seg_start=seg_start,
        tl_seg_dir=seg_dir,
        tl_stop_t=stop_t,
    )


def scenario_arrays(scenario: scenario_pb2.Scenario, source: str = "") -> ScenarioArrays:
    """Extracts the padded log arrays of `scenario` (sim agents in official evaluation order)."""
    source = source or f"scenario {scenario.scenario_id}"
    if len(scenario.timestamps_seconds) != NUM_STEPS and any(
        len(t.states) != NUM_STEPS for t in scenario.tracks
    ):
        raise rollout_checks.RolloutError(source, f"scenario tracks do not have {NUM_STEPS} steps")
    eval_ids = list(submission_specs.get_evaluation_sim_agent_ids(scenario, _CHALLENGE))
    sim_ids = list(submission_specs.get_sim_agent_ids(scenario, _CHALLENGE))
    order = eval_ids + [i for i in sim_ids if i not in set(eval_ids)]
    # Track states and map points in bulk (decode_proto): the protobuf Python API costs ~0.5 us
    # per field, ~25 ms per scenario, as much as the compiled metrics.
    decoded = scenario_decoder.decode_scenario_arrays(scenario.SerializeToString())
    edges = _road_edge_tables(decoded, source)
    lanes = _lane_and_light_tables(scenario, decoded)
    bucket = choose_bucket(
        len(order),
        len(edges["edge_valid"]) + 1,
        len(lanes["lane_valid"]),
        lanes["tl_red"].shape[1],
        len(eval_ids),
    )
    num = bucket.agents
    row_of = {t.id: row for row, t in enumerate(scenario.tracks)}
    rows = np.array([row_of[i] for i in order], np.int64)
    fields = [scenario_decoder.STATE_FIELDS.index(n) for n in _STATE_NAMES]
    state = np.zeros((num, NUM_STEPS, len(fields)), np.float64)
    valid = np.zeros((num, NUM_STEPS), bool)
    state[: len(rows)] = decoded["states"][rows][:, :NUM_STEPS][..., fields]
    valid[: len(rows)] = decoded["valid"][rows][:, :NUM_STEPS]
    types = np.array([t.object_type for t in scenario.tracks], np.int64)
    is_vehicle = np.zeros(num, bool)
    is_vehicle[: len(rows)] = types[rows] == scenario_pb2.Track.ObjectType.TYPE_VEHICLE
    state = state.astype(np.float32)
    object_id = np.full(num, -1, np.int64)
    object_id[: len(order)] = order
    return ScenarioArrays(
        scenario_id=scenario.scenario_id,
        object_id=object_id,
        num_eval=len(eval_ids),
        agent_mask=object_id >= 0,
        is_vehicle=is_vehicle,
        xyz=state[..., :3],
        heading=state[..., 3],
        size=state[:, CURRENT, 4:7],
        size_hist=state[:, : CURRENT + 1, 4:7],
        valid=valid,
        bucket=bucket,
        **_pad_edges(edges, bucket.edge_segments),
        **_pad_lanes_and_lights(lanes, bucket.lane_segments, bucket.lights),
    )


def rollout_arrays(
    arrays: ScenarioArrays, rollouts: sim_agents_submission_pb2.ScenarioRollouts, source: str = ""
) -> np.ndarray:
    """Returns [R, A, 80, 4] float32 (x, y, z, heading) of `rollouts` in `arrays`' agent order.

    Expects rollouts that passed `rollout_checks.validate_rollouts`; re-checks step counts and
    finiteness (cheap on the decoded arrays) so a caller that skipped validation still gets a
    clear error rather than garbage scores.
    """
    num_rollouts = len(rollouts.joint_scenes)
    steps = _SPEC.n_simulation_steps
    counts, lengths, coords, ids = rollout_decode.decode_joint_scenes(rollouts)
    agent_ids = arrays.object_id[arrays.agent_mask]
    order = np.argsort(agent_ids)
    pos = np.minimum(np.searchsorted(agent_ids[order], ids), len(order) - 1)
    known = agent_ids[order][pos] == ids
    if (lengths != steps).any() or not known.all():
        rollout_checks.validate_rollouts(rollouts, _scenario_stub(arrays), source)
        raise rollout_checks.RolloutError(
            source, "rollouts with wrong step counts or unknown objects"
        )  # validation names the cause first
    out = np.zeros((num_rollouts, len(arrays.object_id), steps, 4), np.float32)
    out[np.repeat(np.arange(num_rollouts), counts), order[pos]] = coords[:, :steps]
    if not np.isfinite(out).all():
        rollout_checks.check_rollout_values(rollouts, source)
    return out


def _scenario_stub(arrays: ScenarioArrays) -> scenario_pb2.Scenario:
    """Minimal Scenario with the sim agents of `arrays`, to produce validation messages."""
    scenario = scenario_pb2.Scenario(scenario_id=arrays.scenario_id)
    for object_id in arrays.object_id[arrays.agent_mask]:
        track = scenario.tracks.add(id=int(object_id))
        for _ in range(NUM_STEPS):
            track.states.add(valid=True)
    return scenario
