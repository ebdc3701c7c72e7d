"""Planner reward per 10 Hz step: -10 C - O - R + 1e-4 P (paper Sec. 4.2).

C  the AV box overlaps the box of a valid other object (separating-axis test,
   `rl.collision.boxes_overlap`); objects already overlapping the AV at the current step
   (log artefacts, e.g. a box that clips the SDC's parking neighbour) never count.
O  a corner of the AV box is off the road: its signed distance to the nearest road edge
   (positive = off the road; the road lies on an edge's left) exceeds `offroad_margin` --
   `metrics.fast_map_features.distance_to_road_edge`, the metrics' own road-edge code.
R  the AV centre is farther than `route_threshold` from its logged path.
P  the step's displacement projected onto the logged path's direction (metres of progress).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

import gin
from motion_sim.metrics import fast_map_features
from motion_sim.planning import route
from motion_sim.rl import collision

EDGE_FIELDS = fast_map_features.EDGE_FIELDS


class RewardTerms(NamedTuple):
    """Per-world, per-10 Hz-step terms ([W, T] float32; T = 80 steps 11..90).

    Attributes:
      reward: weighted sum.
      collision: C in {0, 1}. offroad: O in {0, 1}. off_route: R in {0, 1}.
      progress: P (m).
    """

    reward: tf.Tensor
    collision: tf.Tensor
    offroad: tf.Tensor
    off_route: tf.Tensor
    progress: tf.Tensor


def current_overlap(
    av_xy, av_heading, av_size, others_xy, others_heading, others_size, others_valid
) -> tf.Tensor:
    """[..., O] bool: other objects overlapping the AV box at the current step (excluded)."""
    return others_valid & collision.boxes_overlap(
        av_xy[..., None, :],
        av_heading[..., None],
        av_size[0],
        av_size[1],
        others_xy,
        others_heading,
        others_size[..., 0],
        others_size[..., 1],
    )


def av_collision(
    av_xy, av_heading, av_size, others_xy, others_heading, others_size, others_valid, excluded
) -> tf.Tensor:
    """[..., T] float32 C: AV (xy [..., T, 2], heading [..., T]) overlaps a counted object.

    others_*: [..., O, T(, 2)] (broadcast against the AV's leading axes); others_size
    [..., O, 2]; excluded [..., O] objects never counted.
    """
    hit = collision.boxes_overlap(
        av_xy[..., None, :, :],
        av_heading[..., None, :],
        av_size[0],
        av_size[1],
        others_xy,
        others_heading,
        others_size[..., 0][..., None],
        others_size[..., 1][..., None],
    )
    hit = hit & others_valid & ~excluded[..., None]
    return tf.cast(tf.reduce_any(hit, axis=-2), tf.float32)


@tf.function(jit_compile=True)
def _edge_distance(xyzh, valid, size, edges):
    return fast_map_features.distance_to_road_edge(xyzh, valid, size, xyzh.shape[0], edges)[0]


def road_edge_distance(xy, heading, z, size, edges: dict) -> np.ndarray:
    """Signed distance [W, T] of the AV box's worst corner to the road edges (+ = off road).

    Args:
      xy: [W, 1 + T, 2] float64/32 WORLD-frame centres, current step first (T multiple of 10);
      heading: [W, 1 + T] world yaw; z: [1 + T] logged height; size: [3] length, width, height;
      edges: the `ScenarioArrays` edge_* tables of the scene (`EDGE_FIELDS`).
    The metrics' own exact pruned search (`fast_map_features.distance_to_road_edge`).
    """
    w, steps = np.shape(heading)
    xyzh = np.concatenate(
        [
            np.asarray(xy, np.float32),
            np.broadcast_to(np.asarray(z, np.float32)[None, :, None], (w, steps, 1)),
            np.asarray(heading, np.float32)[..., None],
        ],
        axis=-1,
    )
    valid = np.ones((w, steps), bool)
    sizes = np.broadcast_to(np.asarray(size, np.float32), (w, 3))
    edges = {k: tf.constant(edges[k]) for k in EDGE_FIELDS}
    return _edge_distance(tf.constant(xyzh), tf.constant(valid), tf.constant(sizes), edges).numpy()


@gin.configurable
class PlannerReward:
    """Args:
    collision_weight, offroad_weight, off_route_weight, progress_weight: the weights
      (10, 1, 1, 1e-4 in the paper).
    offroad_margin: m a corner may be past a road edge before O counts.
    route_threshold: m from the logged path before R counts.
    """

    def __init__(
        self,
        collision_weight: float = 10.0,
        offroad_weight: float = 1.0,
        off_route_weight: float = 1.0,
        progress_weight: float = 1e-4,
        offroad_margin: float = 0.0,
        route_threshold: float = 2.0,
    ):
        self.collision_weight, self.offroad_weight = float(collision_weight), float(offroad_weight)
        self.off_route_weight = float(off_route_weight)
        self.progress_weight = float(progress_weight)
        self.offroad_margin, self.route_threshold = float(offroad_margin), float(route_threshold)

    def route_terms(self, xy, path: route.LoggedPath):
        """(R [..., T], P [..., T]) of centres xy [..., 1 + T, 2] (first = previous position).

        P's direction is that of the path segment nearest the step's start.
        """
        dist, _ = route.nearest_on_path(xy[..., 1:, :], path)
        _, direction = route.nearest_on_path(xy[..., :-1, :], path)
        progress = tf.reduce_sum((xy[..., 1:, :] - xy[..., :-1, :]) * direction, axis=-1)
        return tf.cast(dist > self.route_threshold, tf.float32), progress

    def combine(self, collision_, offroad, off_route, progress) -> RewardTerms:
        reward = (
            -self.collision_weight * collision_
            - self.offroad_weight * offroad
            - self.off_route_weight * off_route
            + self.progress_weight * progress
        )
        return RewardTerms(reward, collision_, offroad, off_route, progress)

    def __call__(
        self,
        av_xy,
        av_heading,
        av_size,
        others_xy,
        others_heading,
        others_size,
        others_valid,
        path: route.LoggedPath,
        edge_distance,
    ) -> RewardTerms:
        """Reward of executed AV trajectories in W worlds.

        Args:
          av_xy: [W, 1 + T, 2] scene-frame AV centres at 10 Hz, current step first;
            av_heading [W, 1 + T]; av_size [2] length, width.
          others_xy: [W, O, 1 + T, 2], others_heading [W, O, 1 + T], others_valid
            [W, O, 1 + T] (current step first), others_size [O, 2].
          path: the AV's logged path. edge_distance: [W, T] from `road_edge_distance`.
        """
        av_xy = tf.convert_to_tensor(av_xy, tf.float32)
        av_heading = tf.convert_to_tensor(av_heading, tf.float32)
        av_size = tf.convert_to_tensor(av_size, tf.float32)
        others_xy = tf.convert_to_tensor(others_xy, tf.float32)
        others_heading = tf.convert_to_tensor(others_heading, tf.float32)
        others_size = tf.convert_to_tensor(others_size, tf.float32)
        others_valid = tf.convert_to_tensor(others_valid, tf.bool)
        excluded = current_overlap(
            av_xy[:, 0],
            av_heading[:, 0],
            av_size,
            others_xy[:, :, 0],
            others_heading[:, :, 0],
            others_size,
            others_valid[:, :, 0],
        )
        coll = av_collision(
            av_xy[:, 1:],
            av_heading[:, 1:],
            av_size,
            others_xy[:, :, 1:],
            others_heading[:, :, 1:],
            others_size,
            others_valid[:, :, 1:],
            excluded,
        )
        offroad = tf.cast(
            tf.convert_to_tensor(edge_distance, tf.float32) > self.offroad_margin, tf.float32
        )
        off_route, progress = self.route_terms(av_xy, path)
        return self.combine(coll, offroad, off_route, progress)
