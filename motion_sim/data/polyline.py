"""Cuts map polylines into fixed-size chunks and keeps the ones nearest the scene.

Spacing choice: each chunk holds POINTS_PER_POLYLINE (20) points spaced at most
MAX_POINT_SPACING_M = 2 m apart, so a chunk spans <= 38 m. A 2 m chord deviates < 5 cm from a
10 m-radius intersection curve, while 256 chunks cover ~9.7 km of polyline -- the total length
of a typical WOMD scene (the bundled samples hold 4.7 km and 10.1 km), i.e. a radius of ~100-150 m
around the SDC in dense downtown maps. A 1 m spacing would halve that coverage. Each polyline is
split into the fewest equal chunks that respect the spacing; consecutive chunks share their end
points so the map has no gaps. Shorter polylines are resampled to 20 points too (denser), so
every chunk carries the same number of points; a single-point feature (stop sign) is one point.
"""
from __future__ import annotations

import numpy as np

from motion_sim.data.datatypes import MAX_POLYLINES, POINTS_PER_POLYLINE

MAX_POINT_SPACING_M = 2.0
MAX_CHUNK_LENGTH_M = MAX_POINT_SPACING_M * (POINTS_PER_POLYLINE - 1)


def chunk_polyline(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[P, 2] points -> ([C, L, 2] resampled chunks, [C, L] valid), L = POINTS_PER_POLYLINE."""
    n_points = POINTS_PER_POLYLINE
    seg = np.linalg.norm(np.diff(points, axis=0), axis=-1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if len(points) < 2 or total <= 0.0:
        xy = np.zeros((1, n_points, 2))
        xy[0, 0] = points[0]
        valid = np.zeros((1, n_points), bool)
        valid[0, 0] = True
        return xy, valid
    num_chunks = max(1, int(np.ceil(total / MAX_CHUNK_LENGTH_M - 1e-9)))
    chunk_len = total / num_chunks
    s = (np.arange(num_chunks)[:, None] + np.linspace(0.0, 1.0, n_points)[None, :]) * chunk_len
    # Repeated points give zero-length segments; np.interp needs increasing abscissae, so keep
    # the last of each run of equal arc lengths.
    keep = np.r_[arc[1:] > arc[:-1], True]
    arc, pts = arc[keep], points[keep]
    xy = np.stack([np.interp(s, arc, pts[:, 0]), np.interp(s, arc, pts[:, 1])], axis=-1)
    return xy, np.ones((num_chunks, n_points), bool)


def select_map(polylines: list, max_polylines: int = MAX_POLYLINES):
    """Chunks every (MapType, [P, 2] scene-frame xy) polyline and keeps the chunks nearest the
    scene origin (distance of a chunk = its closest point), nearest first.

    Returns: map_xy [max_polylines, L, 2] float32, map_type [max_polylines] int32,
      map_valid [max_polylines, L] bool, num_chunks (before the cut).
    """
    all_xy, all_valid, all_type = [], [], []
    for map_type, xy in polylines:
        chunks, valid = chunk_polyline(xy)
        all_xy.append(chunks)
        all_valid.append(valid)
        all_type.append(np.full(len(chunks), int(map_type), np.int32))
    map_xy = np.zeros((max_polylines, POINTS_PER_POLYLINE, 2), np.float32)
    map_type = np.zeros(max_polylines, np.int32)
    map_valid = np.zeros((max_polylines, POINTS_PER_POLYLINE), bool)
    if not all_xy:
        return map_xy, map_type, map_valid, 0
    xy = np.concatenate(all_xy)
    valid = np.concatenate(all_valid)
    types = np.concatenate(all_type)
    dist = np.where(valid, np.linalg.norm(xy, axis=-1), np.inf).min(axis=-1)
    order = np.argsort(dist, kind="stable")[:max_polylines]
    k = len(order)
    map_xy[:k] = xy[order]
    map_type[:k] = types[order]
    map_valid[:k] = valid[order]
    map_xy[~map_valid] = 0.0
    return map_xy, map_type, map_valid, len(xy)
