"""Planner reward terms C, O, R, P against values worked out by hand on constructed scenes."""

import numpy as np
from waymo_open_dataset.protos import scenario_pb2

from motion_sim.metrics import scenario_arrays
from motion_sim.planning import reward as reward_lib
from motion_sim.planning.route import LoggedPath
from tests.fixtures.testcase import TestCase

T = 10  # simulated steps (the road-edge search works on chunks of 10)
SIZE = np.array([4.0, 2.0, 1.5], np.float32)  # AV length, width, height


def _straight_edge_tables():
    """Road edge from (-50, 0) to (50, 0): the road is on its left (y > 0)."""
    scenario = scenario_pb2.Scenario(scenario_id="edge", current_time_index=10, sdc_track_index=0)
    scenario.timestamps_seconds.extend([0.1 * i for i in range(91)])
    track = scenario.tracks.add(id=1, object_type=1)
    for _i in range(91):
        track.states.add(
            center_x=0.0,
            center_y=5.0,
            center_z=0.0,
            length=4.0,
            width=2.0,
            height=1.5,
            heading=0.0,
            valid=True,
        )
    edge = scenario.map_features.add(id=7).road_edge
    for x in np.linspace(-50.0, 50.0, 11):
        edge.polyline.add(x=float(x), y=0.0, z=0.0)
    arrays = scenario_arrays.scenario_arrays(scenario)
    return {k: getattr(arrays, k) for k in reward_lib.EDGE_FIELDS}


def _still(xy, heading=0.0, steps=T + 1):
    return (
        np.tile(np.asarray(xy, np.float32), (1, steps, 1)),
        np.full((1, steps), heading, np.float32),
    )


class PlannerRewardTest(TestCase):
    def test_offroad_is_the_worst_corner_past_the_edge(self):
        edges = _straight_edge_tables()
        # Centre 5 m inside the road: every corner is 4-6 m on the road side.
        xy, heading = _still([[0.0, 5.0]])
        dist = reward_lib.road_edge_distance(xy, heading, np.zeros(T + 1), SIZE, edges)
        self.assertAllClose(dist, np.full((1, T), -4.0), atol=1e-4)
        # Centre 0.5 m inside: the right-hand corners (y = -0.5) are 0.5 m off the road.
        xy, heading = _still([[0.0, 0.5]])
        dist = reward_lib.road_edge_distance(xy, heading, np.zeros(T + 1), SIZE, edges)
        self.assertAllClose(dist, np.full((1, T), 0.5), atol=1e-4)
        reward = reward_lib.PlannerReward()
        path = LoggedPath.from_log(
            np.stack([np.linspace(0, 1, 91), np.full(91, 0.5)], -1), np.ones(91, bool)
        )
        others = np.zeros((1, 1, T + 1, 2), np.float32)
        terms = reward(
            xy,
            heading,
            SIZE[:2],
            others,
            others[..., 0],
            np.ones((1, 2)),
            np.zeros((1, 1, T + 1), bool),
            path,
            dist,
        )
        self.assertAllEqual(terms.offroad, np.ones((1, T)))
        margin = reward_lib.PlannerReward(offroad_margin=0.6)
        terms = margin(
            xy,
            heading,
            SIZE[:2],
            others,
            others[..., 0],
            np.ones((1, 2)),
            np.zeros((1, 1, T + 1), bool),
            path,
            dist,
        )
        self.assertAllEqual(terms.offroad, np.zeros((1, T)))

    def test_collision_route_progress_and_total(self):
        # AV drives along x at 1 m per step from (0, 0) with heading 0; 4 m x 2 m box.
        steps = np.arange(T + 1, dtype=np.float32)
        av_xy = np.stack([steps, np.zeros_like(steps)], -1)[None]
        av_xy[0, 6:, 1] = 2.5  # from step 6 on it is 2.5 m beside its logged path
        av_heading = np.zeros((1, T + 1), np.float32)
        # Other objects (4 x 2 m): 0 stands at x = 7.5 (AV centre reaches 3.5 m from it at
        # step 4: overlap at steps 4..10 while the AV is on y = 0, i.e. steps 4 and 5, and
        # at y = 2.5 the boxes are 2.5 m apart across, width sum / 2 = 2: no overlap);
        # 1 overlaps the AV already at the current step (excluded for the whole episode);
        # 2 is turned 90 degrees at x = 9.9 (its half-extent along x is 1): the AV box front
        # (centre + 2) touches it from centre 6.9 -> steps 7..10 but then the AV is at
        # y = 2.5 and the other spans y in [-2, 2], AV spans [1.5, 3.5]: overlap.
        o_xy = np.zeros((1, 3, T + 1, 2), np.float32)
        o_xy[0, 0, :, 0] = 7.5
        o_xy[0, 1] = av_xy[0]  # rides with the AV
        o_xy[0, 2, :, 0] = 9.9
        o_heading = np.zeros((1, 3, T + 1), np.float32)
        o_heading[0, 2] = np.pi / 2
        o_valid = np.ones((1, 3, T + 1), bool)
        o_size = np.array([[4.0, 2.0], [4.0, 2.0], [4.0, 2.0]], np.float32)
        path = LoggedPath.from_log(
            np.stack([np.linspace(0, 90, 91), np.zeros(91)], -1), np.ones(91, bool)
        )
        edge = np.full((1, T), -3.0, np.float32)
        terms = reward_lib.PlannerReward()(
            av_xy, av_heading, SIZE[:2], o_xy, o_heading, o_size, o_valid, path, edge
        )
        # By hand, steps 1..10 (AV centre x = 1..10):
        # object 0: |dx| = 7.5 - x <= 4 and same y -> x >= 3.5 while y = 0: steps 4, 5.
        # object 2: AV front x + 2 >= 9.9 - 1 -> x >= 6.9: steps 7..10; y-extents overlap.
        want_c = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1, 1], np.float32)
        self.assertAllEqual(terms.collision[0], want_c)
        want_r = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], np.float32)  # 2.5 m > 2 m from step 6
        self.assertAllEqual(terms.off_route[0], want_r)
        want_p = np.ones(T, np.float32)  # 1 m along the path's direction (+x) every step
        self.assertAllClose(terms.progress[0], want_p)
        self.assertAllEqual(terms.offroad[0], np.zeros(T))
        self.assertAllClose(terms.reward[0], -10 * want_c - want_r + 1e-4 * want_p)
        # Without the current-step exclusion object 1 would collide at every step.
        o_valid[0, 1, 0] = False  # not there now: counted from step 1 on
        terms = reward_lib.PlannerReward()(
            av_xy, av_heading, SIZE[:2], o_xy, o_heading, o_size, o_valid, path, edge
        )
        self.assertAllEqual(terms.collision[0], np.ones(T))

    def test_progress_is_projected_on_the_path_direction(self):
        diag = np.stack([np.linspace(0, 90, 91), np.linspace(0, 90, 91)], -1)
        path = LoggedPath.from_log(diag, np.ones(91, bool))
        xy = np.array([[[10.0, 10.0], [11.0, 10.0], [11.0, 8.0]]], np.float32)
        r, p = reward_lib.PlannerReward().route_terms(xy, path)
        # (1, 0) . (1, 1)/sqrt(2); (0, -2) . (1, 1)/sqrt(2). Distances: 0.707, 2.121 m.
        self.assertAllClose(p[0], [np.sqrt(0.5), -2 * np.sqrt(0.5)], atol=1e-5)
        self.assertAllEqual(r[0], [0.0, 1.0])
