"""What a rollout picture shows: one scene's map, its log and R sampled joint rollouts (numpy).

Everything is in the scene frame (SDC at the origin, x along its heading at the current step),
so a picture looks the same whether the rollouts came from the in-process sampler (scene
frame already), a SavedModel or a submission file (world frame, converted with the scene's
float64 frame).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from motion_sim.data import datatypes, frames


class RolloutView(NamedTuple):
    """One scene and its sampled rollouts, unbatched numpy, scene frame.

    A agents (scene rows), S = 91 logged steps, P map polylines of L points, R rollouts of the
    80 simulated steps (indices 11..90).

    Attributes:
      scenario_id: str.
      map_xy: [P, L, 2] float32 polyline points; map_type: [P] int32 `MapType`;
        map_valid: [P, L] bool.
      agent_xy: [A, S, 2] float32 logged positions; agent_heading: [A, S] float32;
        agent_valid: [A, S] bool; agent_size: [A, 3] float32 (length, width, height);
        agent_type: [A] int32 `AgentType`; agent_id: [A] int64.
      agent_mask: [A] bool, the row holds a real agent.
      rollout_xy: [R, A, 80, 2] float32 sampled positions; rollout_heading: [R, A, 80] float32.
      rollout_mask: [A] bool, the agent has sampled rollouts (subset of agent_mask).
    """

    scenario_id: str
    map_xy: np.ndarray
    map_type: np.ndarray
    map_valid: np.ndarray
    agent_xy: np.ndarray
    agent_heading: np.ndarray
    agent_valid: np.ndarray
    agent_size: np.ndarray
    agent_type: np.ndarray
    agent_id: np.ndarray
    agent_mask: np.ndarray
    rollout_xy: np.ndarray
    rollout_heading: np.ndarray
    rollout_mask: np.ndarray

    @property
    def num_rollouts(self) -> int:
        return int(self.rollout_xy.shape[0])


def _scene_dict(scene) -> dict:
    return dict(datatypes.scene_fields(scene))


def _scenario_id(value) -> str:
    value = np.asarray(value)
    value = value.item() if value.shape == () else value.reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def make_view(scene, rollout_xy, rollout_heading, rollout_mask=None) -> RolloutView:
    """A view from an unbatched `Scene` (or dict of its fields) and scene-frame rollouts.

    Args:
      scene: unbatched Scene fields (numpy or tensors).
      rollout_xy: [R, A, 80, 2] scene-frame positions; rollout_heading: [R, A, 80].
      rollout_mask: [A] bool agents that were simulated (default: `agent_mask`).

    Raises:
      ValueError: shapes disagree (the message says which).
    """
    s = {k: np.asarray(v) for k, v in _scene_dict(scene).items()}
    rollout_xy = np.asarray(rollout_xy, np.float32)
    rollout_heading = np.asarray(rollout_heading, np.float32)
    num_agents = s["agent_mask"].shape[0]
    want = (num_agents, datatypes.NUM_FUTURE_STEPS)
    if rollout_xy.ndim != 4 or rollout_xy.shape[1:3] != want or rollout_xy.shape[-1] != 2:
        raise ValueError(f"rollout_xy must be [R, {num_agents}, 80, 2], got {rollout_xy.shape}")
    if rollout_heading.shape != rollout_xy.shape[:-1]:
        raise ValueError(
            f"rollout_heading must be {rollout_xy.shape[:-1]}, got {rollout_heading.shape}"
        )
    mask = s["agent_mask"].astype(bool)
    if rollout_mask is not None:
        mask = mask & np.asarray(rollout_mask, bool)
    return RolloutView(
        scenario_id=_scenario_id(s["scenario_id"]),
        map_xy=s["map_xy"].astype(np.float32),
        map_type=s["map_type"].astype(np.int32),
        map_valid=s["map_valid"].astype(bool),
        agent_xy=s["agent_xy"].astype(np.float32),
        agent_heading=s["agent_heading"].astype(np.float32),
        agent_valid=s["agent_valid"].astype(bool),
        agent_size=s["agent_size"].astype(np.float32),
        agent_type=s["agent_type"].astype(np.int32),
        agent_id=s["agent_id"].astype(np.int64),
        agent_mask=s["agent_mask"].astype(bool),
        rollout_xy=rollout_xy,
        rollout_heading=rollout_heading,
        rollout_mask=mask,
    )


def view_from_world(scene, trajectories, object_ids) -> RolloutView:
    """A view from world-frame rollouts keyed by object id (SavedModel output, submission file).

    Args:
      scene: unbatched Scene fields (their frame converts world -> scene, in float64).
      trajectories: [R, N, 80, >=2] world x, y[, z], heading (heading last) float.
      object_ids: [N] int object ids of the trajectories' rows; rows whose id is not one of the
        scene's agents (e.g. dropped beyond MAX_AGENTS, or padding -1) are left out.
    """
    s = {k: np.asarray(v) for k, v in _scene_dict(scene).items()}
    trajectories = np.asarray(trajectories, np.float64)
    object_ids = np.asarray(object_ids, np.int64)
    num_rollouts = trajectories.shape[0]
    num_agents = s["agent_mask"].shape[0]
    row_of = {int(i): a for a, i in enumerate(s["agent_id"]) if s["agent_mask"][a]}
    xy = np.zeros((num_rollouts, num_agents, datatypes.NUM_FUTURE_STEPS, 2), np.float32)
    heading = np.zeros((num_rollouts, num_agents, datatypes.NUM_FUTURE_STEPS), np.float32)
    mask = np.zeros(num_agents, bool)
    for n, object_id in enumerate(object_ids):
        a = row_of.get(int(object_id))
        if a is None:
            continue
        scene_xy, scene_h = frames.to_scene(trajectories[:, n, :, :2], trajectories[:, n, :, -1], s)
        xy[:, a], heading[:, a], mask[a] = scene_xy, scene_h, True
    return make_view(s, xy, heading, mask)


def view_from_scenario_rollouts(scene, scenario_rollouts) -> RolloutView:
    """A view from a WOSAC `ScenarioRollouts` proto (world frame) and the scene it belongs to."""
    joint = list(scenario_rollouts.joint_scenes)
    if not joint:
        raise ValueError(f"scenario {scenario_rollouts.scenario_id}: rollouts hold no joint scene")
    ids = [t.object_id for t in joint[0].simulated_trajectories]
    traj = np.zeros((len(joint), len(ids), datatypes.NUM_FUTURE_STEPS, 3), np.float64)
    for r, js in enumerate(joint):
        by_id = {t.object_id: t for t in js.simulated_trajectories}
        for n, object_id in enumerate(ids):
            t = by_id.get(object_id)
            if t is None:
                raise ValueError(
                    f"scenario {scenario_rollouts.scenario_id}: rollout {r} lacks "
                    f"object {object_id}"
                )
            traj[r, n] = np.stack([t.center_x, t.center_y, t.heading], axis=-1)
    return view_from_world(scene, traj, ids)
