"""`RawScenario` (world frame, any size) -> `Scene` (scene frame, fixed shapes), and back.

Frame: origin at the SDC's position at CURRENT_INDEX, x axis along its heading then (the
transforms themselves: `motion_sim/data/frames.py`).

Agents: only tracks valid at CURRENT_INDEX (the set WOSAC simulates), ordered SDC, then
tracks_to_predict, then by distance to the SDC. Beyond MAX_AGENTS the farthest are dropped --
not an error: their ids are returned so the submission step can still roll them out.
"""

from __future__ import annotations

import numpy as np

from motion_sim.data.datatypes import (
    CURRENT_INDEX,
    MAX_AGENTS,
    MAX_TRAFFIC_LIGHTS,
    NUM_STEPS,
    RawScenario,
    ScenarioError,
    Scene,
)
from motion_sim.data.frames import to_scene, wrap_angle
from motion_sim.data.polyline import select_map


def _validate(raw: RawScenario) -> None:
    src = raw.source
    n = len(raw.track_id)
    ttp = np.asarray(raw.tracks_to_predict)
    if not 0 <= raw.sdc_index < n or ((ttp < 0) | (ttp >= n)).any():
        raise ScenarioError(
            src,
            f"scenario {raw.scenario_id!r}: sdc_index {raw.sdc_index} or "
            f"tracks_to_predict {ttp.tolist()} outside [0, {n})",
            reason="bad_record",
        )
    # One rule for every stage (preprocess, submission, any reader): a scene whose object ids
    # repeat is skipped as a whole -- which row is "the" agent is unknowable, and WOSAC scores by
    # id. Checked here because every reader's output passes through build_scene.
    ids, counts = np.unique(np.asarray(raw.track_id), return_counts=True)
    if (counts > 1).any():
        dups = ids[counts > 1]
        raise ScenarioError(
            src,
            f"scenario {raw.scenario_id!r}: object id(s) "
            f"{dups[:5].tolist()}{' ...' if len(dups) > 5 else ''} appear "
            f"more than once ({int((counts[counts > 1] - 1).sum())} "
            "duplicate tracks); object ids must be unique in a scene",
            reason="duplicate_object_id",
        )
    current_valid = raw.valid[:, CURRENT_INDEX]
    if not current_valid.any():
        raise ScenarioError(
            src,
            f"scenario {raw.scenario_id!r}: no track is valid at the current step {CURRENT_INDEX}",
            reason="no_valid_agents",
        )
    if not current_valid[raw.sdc_index]:
        raise ScenarioError(
            src,
            f"scenario {raw.scenario_id!r}: SDC (track "
            f"{raw.track_id[raw.sdc_index]}) is invalid at the current step",
            reason="sdc_invalid",
        )
    for name in ("xyz", "velocity", "heading", "size"):
        values = getattr(raw, name)
        bad = ~np.isfinite(values).reshape(values.shape[:2] + (-1,)).all(-1) & raw.valid
        if bad.any():
            row, step = np.argwhere(bad)[0]
            raise ScenarioError(
                src,
                f"scenario {raw.scenario_id!r}: non-finite {name} for track "
                f"{raw.track_id[row]} at valid step {step} "
                f"({int(bad.sum())} agent-steps in all)",
                reason="non_finite_state",
            )
    if not raw.map_polylines:
        raise ScenarioError(src, f"scenario {raw.scenario_id!r}: no map features", reason="no_map")
    for map_type, points in raw.map_polylines:
        if not np.isfinite(points).all():
            raise ScenarioError(
                src,
                f"scenario {raw.scenario_id!r}: non-finite point in a "
                f"{map_type.name if hasattr(map_type, 'name') else map_type} "
                f"polyline",
                reason="non_finite_map",
            )


def _agent_order(raw: RawScenario) -> np.ndarray:
    """Rows valid at CURRENT_INDEX: SDC, tracks_to_predict, then nearest to the SDC."""
    current_valid = raw.valid[:, CURRENT_INDEX]
    sdc = raw.sdc_index
    first = [sdc]
    for row in raw.tracks_to_predict:
        row = int(row)
        if current_valid[row] and row not in first:
            first.append(row)
    rest = np.flatnonzero(current_valid)
    rest = rest[~np.isin(rest, first)]
    d = np.linalg.norm(raw.xyz[rest, CURRENT_INDEX, :2] - raw.xyz[sdc, CURRENT_INDEX, :2], axis=-1)
    return np.concatenate([np.array(first, np.int64), rest[np.argsort(d, kind="stable")]])


def _traffic_lights(raw: RawScenario, frame: dict):
    tl_xy = np.zeros((NUM_STEPS, MAX_TRAFFIC_LIGHTS, 2), np.float32)
    tl_state = np.zeros((NUM_STEPS, MAX_TRAFFIC_LIGHTS), np.int32)
    tl_valid = np.zeros((NUM_STEPS, MAX_TRAFFIC_LIGHTS), bool)
    if raw.tl_valid.size == 0:
        return tl_xy, tl_state, tl_valid
    xy, _ = to_scene(raw.tl_xyz[..., :2], np.zeros(raw.tl_valid.shape), frame)
    valid = raw.tl_valid & np.isfinite(xy).all(-1)
    # More lights than slots in a step: keep the nearest (valid first, then by distance).
    dist = np.where(valid, np.linalg.norm(np.where(valid[..., None], xy, 0.0), axis=-1), np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, :MAX_TRAFFIC_LIGHTS]
    k = order.shape[1]
    tl_xy[:, :k] = np.take_along_axis(xy, order[..., None], axis=1)
    tl_state[:, :k] = np.take_along_axis(raw.tl_state, order, axis=1)
    tl_valid[:, :k] = np.take_along_axis(valid, order, axis=1)
    tl_xy[~tl_valid] = 0.0
    tl_state[~tl_valid] = 0
    return tl_xy, tl_state, tl_valid


def build_scene(raw: RawScenario) -> tuple[Scene, np.ndarray]:
    """Builds the fixed-shape scene; returns (scene, ids of agents dropped beyond MAX_AGENTS).

    Raises `ScenarioError` (naming `raw.source`) for scenes that cannot be simulated.
    """
    _validate(raw)
    sdc = raw.sdc_index
    origin = raw.xyz[sdc, CURRENT_INDEX].astype(np.float64)
    yaw = float(wrap_angle(raw.heading[sdc, CURRENT_INDEX]))
    frame = {"frame_origin": origin, "frame_yaw": np.float64(yaw)}

    order = _agent_order(raw)
    kept, dropped = order[:MAX_AGENTS], order[MAX_AGENTS:]
    n = len(kept)
    valid = raw.valid[kept]
    xy, heading = to_scene(raw.xyz[kept, :, :2], raw.heading[kept], frame)
    cos, sin = np.cos(yaw), np.sin(yaw)
    vx, vy = raw.velocity[kept, :, 0], raw.velocity[kept, :, 1]
    vel = np.stack([cos * vx + sin * vy, -sin * vx + cos * vy], axis=-1)

    def pad(values, fill, dtype):
        """[n, ...] kept-agent rows -> [MAX_AGENTS, ...] with `fill` in the padding rows."""
        out = np.full((MAX_AGENTS,) + values.shape[1:], fill, dtype)
        out[:n] = values
        return out

    def pad_steps(values):
        """Like pad for [n, S, ...] per-step values; invalid steps hold whatever the source
        wrote (often -1 or 0 sentinels, or NaN), so they are zeroed."""
        mask = valid.reshape(valid.shape + (1,) * (values.ndim - 2))
        return pad(np.where(mask, values, 0.0), 0.0, np.float32)

    ttp_rows = set(int(r) for r in raw.tracks_to_predict)
    # One frame transform for all map points, then split back into polylines.
    all_points = np.concatenate([p[:, :2] for _, p in raw.map_polylines])
    all_points, _ = to_scene(all_points, np.zeros(len(all_points)), frame)
    splits = np.cumsum([len(p) for _, p in raw.map_polylines])[:-1]
    map_polylines = [
        (t, pts) for (t, _), pts in zip(raw.map_polylines, np.split(all_points, splits))
    ]
    map_xy, map_type, map_valid, _ = select_map(map_polylines)
    tl_xy, tl_state, tl_valid = _traffic_lights(raw, frame)

    scene = Scene(
        scenario_id=np.array(raw.scenario_id, dtype=object),
        agent_xy=pad_steps(xy),
        agent_z=pad_steps(raw.xyz[kept, :, 2] - origin[2]),
        agent_vel=pad_steps(vel),
        agent_heading=pad_steps(heading),
        agent_size=pad(raw.size[kept, CURRENT_INDEX], 0.0, np.float32),
        agent_type=pad(raw.track_type[kept], 0, np.int32),
        agent_valid=pad(valid, False, bool),
        agent_mask=np.arange(MAX_AGENTS) < n,
        agent_id=pad(raw.track_id[kept], -1, np.int64),
        tracks_to_predict=pad(np.array([int(r) in ttp_rows for r in kept]), False, bool),
        sdc_index=np.int32(0),
        num_agents_dropped=np.int32(len(dropped)),
        map_xy=map_xy,
        map_type=map_type,
        map_valid=map_valid,
        tl_xy=tl_xy,
        tl_state=tl_state,
        tl_valid=tl_valid,
        frame_origin=origin,
        frame_yaw=np.float64(yaw),
    )
    return scene, raw.track_id[dropped].astype(np.int64)
