"""Collisions and off-road steps of sampled rollouts, for highlighting them in pictures.

Collisions use the RL reward's box-overlap test (`rl/collision.py`, cross-checked against the
official distance in tests). Off-road is a picture-grade check, not the WOSAC metric: a
vehicle's *centre* lies on the outer side of its nearest road-edge segment (road edges are
oriented with the road on their left, the official sign convention). The official metric uses
the four box corners and the neighbouring segments at polyline joints; `evaluate` computes that.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf
from scipy import spatial

from motion_sim.data.datatypes import CURRENT_INDEX, AgentType, MapType
from motion_sim.rl import collision
from motion_sim.viz.rollout_view import RolloutView

ROAD_EDGE_TYPES = (MapType.ROAD_EDGE_BOUNDARY, MapType.ROAD_EDGE_MEDIAN, MapType.ROAD_EDGE_OTHER)
# Nearest edge vertices whose adjacent segments are searched exactly (points are <= 2 m apart).
_NEIGHBOURS = 8


class RolloutEvents(NamedTuple):
    """Per rollout step flags.

    Attributes:
      collided: [R, A, 80] bool, the agent's box overlaps another agent's box.
      offroad: [R, A, 80] bool, a vehicle that started on the road has its centre beyond the
        nearest road edge.
    """

    collided: np.ndarray
    offroad: np.ndarray


def find_events(view: RolloutView) -> RolloutEvents:
    """Collision and off-road flags of every rollout step of `view` (False for non-agents)."""
    return RolloutEvents(collided=collision_flags(view), offroad=offroad_flags(view))


def collision_flags(view: RolloutView) -> np.ndarray:
    """[R, A, 80] bool box overlaps among the simulated agents."""
    rows = np.flatnonzero(view.rollout_mask)
    out = np.zeros(view.rollout_xy.shape[:3], bool)
    if rows.size < 2:
        return out
    length = tf.constant(view.agent_size[rows, 0])
    width = tf.constant(view.agent_size[rows, 1])
    valid = tf.ones([view.rollout_xy.shape[2], rows.size], tf.bool)
    # One rollout at a time: [80, n, n] pairs stay small (R at once would be [R, 80, n, n, 2, 2]).
    for r in range(view.num_rollouts):
        xy = tf.constant(np.transpose(view.rollout_xy[r, rows], (1, 0, 2)))  # [80, n, 2]
        heading = tf.constant(view.rollout_heading[r, rows].T)  # [80, n]
        hit = collision.any_collision(xy, heading, length, width, valid).numpy()  # [80, n]
        out[r, rows] = hit.T
    return out


def road_edge_segments(view: RolloutView) -> tuple[np.ndarray, np.ndarray]:
    """(start [E, 2], end [E, 2]) of every road-edge segment of the view's map polylines."""
    starts, ends = [], []
    for p in np.flatnonzero(np.isin(view.map_type, [int(t) for t in ROAD_EDGE_TYPES])):
        pts = view.map_xy[p][view.map_valid[p]]
        if len(pts) >= 2:
            starts.append(pts[:-1])
            ends.append(pts[1:])
    if not starts:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    start, end = np.concatenate(starts), np.concatenate(ends)
    keep = np.linalg.norm(end - start, axis=-1) > 1e-6  # repeated points: no direction
    return start[keep], end[keep]


def signed_edge_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """[N] signed distance of points [N, 2] to the nearest segment; > 0 right of it (off-road).

    Candidate segments are those starting at one of the `_NEIGHBOURS` nearest segment starts
    or ends (a KD-tree query), which holds the true nearest for segments <= 2 m long.
    """
    tree = spatial.cKDTree(np.concatenate([start, end]))
    k = min(_NEIGHBOURS, 2 * len(start))
    _, idx = tree.query(points, k=k)
    idx = np.asarray(idx).reshape(len(points), k) % len(start)  # end i belongs to segment i
    a, b = start[idx], end[idx]  # [N, k, 2]
    ab = b - a
    ap = points[:, None, :] - a
    t = np.clip(np.sum(ap * ab, -1) / np.sum(ab * ab, -1), 0.0, 1.0)
    dist = np.linalg.norm(ap - t[..., None] * ab, axis=-1)
    best = np.argmin(dist, axis=1)
    rows = np.arange(len(points))
    cross = ap[rows, best, 0] * ab[rows, best, 1] - ap[rows, best, 1] * ab[rows, best, 0]
    return np.sign(cross) * dist[rows, best]


def offroad_flags(view: RolloutView) -> np.ndarray:
    """[R, A, 80] bool: a simulated vehicle's centre is on the off-road side of a road edge."""
    out = np.zeros(view.rollout_xy.shape[:3], bool)
    start, end = road_edge_segments(view)
    rows = np.flatnonzero(view.rollout_mask & (view.agent_type == int(AgentType.VEHICLE)))
    if len(start) == 0 or rows.size == 0:
        return out
    start, end = start.astype(np.float64), end.astype(np.float64)
    # Vehicles that start off the road (parking lots, driveways) are not flagged: the picture
    # highlights rollouts that *leave* the road.
    on_road = (
        signed_edge_distance(view.agent_xy[rows, CURRENT_INDEX].astype(np.float64), start, end)
        <= 0.0
    )
    rows = rows[on_road]
    if rows.size == 0:
        return out
    points = view.rollout_xy[:, rows].reshape(-1, 2).astype(np.float64)
    dist = signed_edge_distance(points, start, end)
    out[:, rows] = (dist > 0.0).reshape(view.rollout_xy.shape[0], rows.size, -1)
    return out
