"""World-frame rollouts (SavedModel outputs, submission files) land on the scene rows."""

from __future__ import annotations

import numpy as np
import pytest
from waymo_open_dataset.protos import sim_agents_submission_pb2

from motion_sim.data import frames
from motion_sim.viz import rollout_view


def _scene(view):
    scene = {
        k: getattr(view, k)
        for k in (
            "map_xy",
            "map_type",
            "map_valid",
            "agent_xy",
            "agent_heading",
            "agent_valid",
            "agent_size",
            "agent_type",
            "agent_id",
            "agent_mask",
        )
    }
    scene.update(
        scenario_id=np.array(view.scenario_id, dtype=object),
        frame_origin=np.array([1200.5, -340.25, 7.0]),
        frame_yaw=np.array(0.7),
    )
    return scene


def test_world_rollouts_round_trip_to_the_scene_frame(demo_view):
    scene = _scene(demo_view)
    world_xy, world_h = frames.to_world(demo_view.rollout_xy, demo_view.rollout_heading, scene)
    rows = np.flatnonzero(demo_view.agent_mask)[::-1]  # any order, by object id
    traj = np.concatenate([world_xy[:, rows], world_h[:, rows, :, None]], axis=-1)
    ids = np.concatenate([demo_view.agent_id[rows], [999999]])  # an id the scene lacks
    traj = np.concatenate([traj, np.zeros_like(traj[:, :1])], axis=1)
    view = rollout_view.view_from_world(scene, traj, ids)
    np.testing.assert_array_equal(view.rollout_mask, demo_view.rollout_mask)
    m = demo_view.rollout_mask
    np.testing.assert_allclose(view.rollout_xy[:, m], demo_view.rollout_xy[:, m], atol=1e-3)


def test_scenario_rollouts_proto(demo_view):
    scene = _scene(demo_view)
    world_xy, world_h = frames.to_world(demo_view.rollout_xy, demo_view.rollout_heading, scene)
    rows = np.flatnonzero(demo_view.agent_mask)
    proto = sim_agents_submission_pb2.ScenarioRollouts(scenario_id=demo_view.scenario_id)
    for r in range(demo_view.num_rollouts):
        joint = proto.joint_scenes.add()
        for a in rows:
            joint.simulated_trajectories.add(
                object_id=int(demo_view.agent_id[a]),
                center_x=world_xy[r, a, :, 0],
                center_y=world_xy[r, a, :, 1],
                center_z=np.zeros(80),
                heading=world_h[r, a],
            )
    view = rollout_view.view_from_scenario_rollouts(scene, proto)
    np.testing.assert_allclose(view.rollout_xy[:, rows], demo_view.rollout_xy[:, rows], atol=1e-3)
    del proto.joint_scenes[1].simulated_trajectories[0]
    with pytest.raises(ValueError, match="rollout 1 lacks object"):
        rollout_view.view_from_scenario_rollouts(scene, proto)


def test_shape_errors(demo_view):
    with pytest.raises(ValueError, match="rollout_xy must be"):
        rollout_view.make_view(
            _scene(demo_view), demo_view.rollout_xy[:, :5], demo_view.rollout_heading[:, :5]
        )
