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


def _chunk_all(polylines: list):
    """Vectorised `chunk_polyline` over many polylines at once (one np.interp call).

    Returns xy [C, L, 2], valid [C, L], chunk types [C].
    """
    n_points = POINTS_PER_POLYLINE
    lengths = np.array([len(p) for _, p in polylines])
    pts = np.concatenate([p[:, :2] for _, p in polylines]).astype(np.float64)
    poly = np.repeat(np.arange(len(polylines)), lengths)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=-1)
    same = poly[1:] == poly[:-1]
    # Repeated points (zero-length segments) would break np.interp's increasing abscissae.
    keep = np.r_[True, ~same | (seg > 0)]
    pts, poly = pts[keep], poly[keep]
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=-1)
    seg[poly[1:] != poly[:-1]] = 0.0
    cum = np.r_[0.0, np.cumsum(seg)]
    first = np.r_[0, np.flatnonzero(poly[1:] != poly[:-1]) + 1]
    last = np.r_[first[1:] - 1, len(poly) - 1]
    total = cum[last] - cum[first]
    # Global abscissa: each polyline's arc length shifted past the previous one (+1 m gap), so
    # one np.interp serves all polylines without mixing them.
    offset = np.r_[0.0, np.cumsum(total + 1.0)[:-1]]
    abscissa = cum - np.repeat(cum[first], last - first + 1) + np.repeat(offset, last - first + 1)
    degenerate = total <= 0.0
    num_chunks = np.where(
        degenerate, 1, np.maximum(1, np.ceil(total / MAX_CHUNK_LENGTH_M - 1e-9))
    ).astype(int)
    chunk_poly = np.repeat(np.arange(len(total)), num_chunks)
    chunk_index = np.arange(len(chunk_poly)) - np.repeat(
        np.cumsum(num_chunks) - num_chunks, num_chunks
    )
    chunk_len = (total / num_chunks)[chunk_poly]
    local = (chunk_index[:, None] + np.linspace(0.0, 1.0, n_points)[None, :]) * chunk_len[:, None]
    local = np.minimum(local, total[chunk_poly, None])
    s = local + offset[chunk_poly, None]
    xy = np.stack([np.interp(s, abscissa, pts[:, 0]), np.interp(s, abscissa, pts[:, 1])], -1)
    valid = np.ones(s.shape, bool)
    valid[degenerate[chunk_poly], 1:] = False
    types = np.array([int(t) for t, _ in polylines], np.int32)
    return xy, valid, types[chunk_poly]


def select_map(polylines: list, max_polylines: int = MAX_POLYLINES):
    """Chunks every (MapType, [P, 2] scene-frame xy) polyline and keeps the chunks nearest the
    scene origin (distance of a chunk = its closest point), nearest first.

    Returns: map_xy [max_polylines, L, 2] float32, map_type [max_polylines] int32,
      map_valid [max_polylines, L] bool, num_chunks (before the cut).
    """
    map_xy = np.zeros((max_polylines, POINTS_PER_POLYLINE, 2), np.float32)
    map_type = np.zeros(max_polylines, np.int32)
    map_valid = np.zeros((max_polylines, POINTS_PER_POLYLINE), bool)
    polylines = [(t, p) for t, p in polylines if len(p)]
    if not polylines:
        return map_xy, map_type, map_valid, 0
    xy, valid, types = _chunk_all(polylines)
    dist = np.where(valid, np.linalg.norm(xy, axis=-1), np.inf).min(axis=-1)
    order = np.argsort(dist, kind="stable")[:max_polylines]
    k = len(order)
    map_xy[:k] = xy[order]
    map_type[:k] = types[order]
    map_valid[:k] = valid[order]
    map_xy[~map_valid] = 0.0
    return map_xy, map_type, map_valid, len(xy)
