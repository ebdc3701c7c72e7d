"""Collision and off-road flags on hand-made rollouts, and the demo policy's counts."""

from __future__ import annotations

import numpy as np

from motion_sim.data.datatypes import AgentType, MapType
from motion_sim.viz import rollout_events, rollout_view


def _view(rollout_xy, agent_start):
    """A one-road-edge map: edge along +x at y = 0 (road on its left, y > 0); A = 3 vehicles."""
    num_agents = len(agent_start)
    map_xy = np.zeros((2, 20, 2), np.float32)
    map_xy[0, :, 0] = np.linspace(-50, 50, 20)
    map_type = np.array([MapType.ROAD_EDGE_BOUNDARY, MapType.PAD], np.int32)
    map_valid = np.zeros((2, 20), bool)
    map_valid[0] = True
    agent_xy = np.zeros((num_agents, 91, 2), np.float32)
    agent_xy[:, :] = np.asarray(agent_start, np.float32)[:, None]
    scene = {
        "scenario_id": np.array("hand", dtype=object),
        "map_xy": map_xy,
        "map_type": map_type,
        "map_valid": map_valid,
        "agent_xy": agent_xy,
        "agent_heading": np.zeros((num_agents, 91)),
        "agent_valid": np.ones((num_agents, 91), bool),
        "agent_size": np.tile([[4.0, 2.0, 1.5]], (num_agents, 1)),
        "agent_type": np.full(num_agents, AgentType.VEHICLE),
        "agent_id": np.arange(num_agents) + 10,
        "agent_mask": np.ones(num_agents, bool),
    }
    heading = np.zeros(np.asarray(rollout_xy).shape[:-1], np.float32)
    return rollout_view.make_view(scene, rollout_xy, heading)


def test_hand_made_collision_and_offroad():
    xy = np.zeros((2, 3, 80, 2), np.float32)
    xy[:, 0] = [0.0, 5.0]  # agent 0 stays on the road
    xy[:, 1] = [30.0, 5.0]  # agent 1 is far away ...
    xy[1, 1, 40:] = [1.0, 5.5]  # ... until rollout 1 drives it into agent 0 at step 40
    xy[:, 2] = [-30.0, 5.0]
    xy[0, 2, 60:] = [-30.0, -3.0]  # rollout 0: agent 2 crosses the road edge at step 60
    events = rollout_events.find_events(_view(xy, [[0, 5], [30, 5], [-30, 5]]))
    assert events.collided.shape == (2, 3, 80)
    np.testing.assert_array_equal(np.flatnonzero(events.collided[1, 0]), np.arange(40, 80))
    np.testing.assert_array_equal(np.flatnonzero(events.collided[1, 1]), np.arange(40, 80))
    assert not events.collided[0].any() and not events.collided[:, 2].any()
    np.testing.assert_array_equal(np.flatnonzero(events.offroad[0, 2]), np.arange(60, 80))
    assert events.offroad.sum() == 20


def test_vehicles_starting_off_the_road_are_not_flagged():
    xy = np.zeros((1, 2, 80, 2), np.float32)
    xy[0, 0] = [0.0, -8.0]  # parked beyond the edge and stays there
    xy[0, 1] = [20.0, -4.0]  # starts on the road, rollout is off it
    events = rollout_events.find_events(_view(xy, [[0, -8], [20, 4]]))
    assert not events.offroad[0, 0].any() and events.offroad[0, 1].all()


def test_signed_distance_matches_geometry():
    start = np.array([[0.0, 0.0], [10.0, 0.0]])
    end = np.array([[10.0, 0.0], [10.0, 10.0]])  # an edge along +x, then up +y
    points = np.array([[5.0, 2.0], [5.0, -3.0], [12.0, 5.0], [8.0, 5.0]])
    np.testing.assert_allclose(
        rollout_events.signed_edge_distance(points, start, end), [-2.0, 3.0, 2.0, -2.0]
    )


def test_demo_policy_first_step_collisions_are_the_logs(demo_view, demo_events):
    agents = demo_view.rollout_mask
    assert not demo_events.collided[:, ~agents].any() and not demo_events.offroad[:, ~agents].any()
    # Boxes that overlap in the log 0.1 s after the current step (parked cars packed tightly)
    # overlap in every rollout then too: a rollout is within centimetres of the log so early.
    log = demo_view._replace(
        rollout_xy=demo_view.agent_xy[None, :, 11:],
        rollout_heading=demo_view.agent_heading[None, :, 11:],
    )
    log_overlap = rollout_events.collision_flags(log)[0, :, 0]
    assert log_overlap.sum() >= 2
    for r in range(demo_view.num_rollouts):
        assert demo_events.collided[r, log_overlap, 0].all()
        assert demo_events.collided[r, :, 0].sum() <= log_overlap.sum() + 4
