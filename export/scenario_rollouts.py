"""World-frame sim-agent outputs -> a validated WOSAC `ScenarioRollouts` proto.

The official sim-agent set is every track valid at the current step
(`submission_specs.get_sim_agent_ids`). A model holds at most `MAX_AGENTS` of them; the rest
(and any it masks out) are driven by the constant-velocity fallback from their logged state at
the current step, and counted, so a submission always covers every required agent.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf
from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2
from waymo_open_dataset.utils.sim_agents import submission_specs

from motion_sim.agents.constant_velocity import constant_velocity_trajectory
from motion_sim.data import datatypes
from motion_sim.data.frames import wrap_angle

CHALLENGE = submission_specs.ChallengeType.SIM_AGENTS


class RolloutStats(NamedTuple):
    """Counts for one scenario.

    Attributes:
      num_sim_agents: agents WOSAC requires (valid at the current step).
      num_model_agents: of those, simulated by the sim agent.
      num_fallback_agents: of those, given the constant-velocity fallback.
    """

    num_sim_agents: int
    num_model_agents: int
    num_fallback_agents: int


def fallback_trajectories(
    scenario: scenario_pb2.Scenario, object_ids: list[int]
) -> dict[int, np.ndarray]:
    """Object id -> float64 [80, 4] world (x, y, z, heading) at constant velocity."""
    if not object_ids:
        return {}
    wanted = set(object_ids)
    states = {t.id: t.states[datatypes.CURRENT_INDEX] for t in scenario.tracks if t.id in wanted}
    ids = list(object_ids)
    rows = np.array(
        [
            [
                states[i].center_x,
                states[i].center_y,
                states[i].center_z,
                states[i].velocity_x,
                states[i].velocity_y,
                states[i].heading,
            ]
            for i in ids
        ],
        np.float64,
    )
    traj = constant_velocity_trajectory(
        tf.constant(rows[:, 0:2]),
        tf.constant(rows[:, 2]),
        tf.constant(rows[:, 3:5]),
        tf.constant(rows[:, 5]),
    ).numpy()
    # Same heading range as the model's outputs (logs hold a few values just outside it).
    traj[..., 3] = wrap_angle(traj[..., 3])
    return dict(zip(ids, traj))


def to_scenario_rollouts(
    scenario: scenario_pb2.Scenario,
    trajectories: np.ndarray,
    object_ids: np.ndarray,
    agent_mask: np.ndarray,
    source: str = "",
) -> tuple[sim_agents_submission_pb2.ScenarioRollouts, RolloutStats]:
    """One scenario's outputs (batch row already selected) -> validated `ScenarioRollouts`.

    Args:
      scenario: the Scenario the rollouts start from.
      trajectories: float32 [R, A, 80, 4] world (x, y, z, heading).
      object_ids: int64 [A]; agent_mask: bool [A].
      source: "<file>:<record>" for error messages.

    Raises:
      ValueError naming the scenario if the outputs are not a valid simulation of it.
    """
    where = f"{source or 'scenario'} ({scenario.scenario_id})"
    num_rollouts, _, num_steps, _ = trajectories.shape
    if num_steps != datatypes.NUM_FUTURE_STEPS:
        raise ValueError(
            f"{where}: rollouts have {num_steps} steps, WOSAC needs {datatypes.NUM_FUTURE_STEPS}"
        )
    sim_ids = [int(i) for i in submission_specs.get_sim_agent_ids(scenario, CHALLENGE)]
    sim_set = set(sim_ids)
    rows = {}
    for row in np.flatnonzero(agent_mask):
        object_id = int(object_ids[row])
        if object_id not in sim_set:
            raise ValueError(
                f"{where}: model simulated object {object_id}, which is not valid "
                "at the current step (not a sim agent)"
            )
        if object_id in rows:
            raise ValueError(f"{where}: model simulated object {object_id} twice")
        rows[object_id] = row
    fallback = fallback_trajectories(scenario, [i for i in sim_ids if i not in rows])

    per_agent = []  # (object_id, [R, 80, 4] float32)
    for object_id in sim_ids:
        if object_id in rows:
            traj = trajectories[:, rows[object_id]]
        else:
            traj = np.broadcast_to(
                fallback[object_id].astype(np.float32), (num_rollouts,) + fallback[object_id].shape
            )
        if not np.all(np.isfinite(traj)):
            raise ValueError(f"{where}: non-finite rollout values for object {object_id}")
        per_agent.append((object_id, traj))

    joint_scenes = []
    for r in range(num_rollouts):
        simulated = [
            sim_agents_submission_pb2.SimulatedTrajectory(
                center_x=traj[r, :, 0].tolist(),
                center_y=traj[r, :, 1].tolist(),
                center_z=traj[r, :, 2].tolist(),
                heading=traj[r, :, 3].tolist(),
                object_id=object_id,
            )
            for object_id, traj in per_agent
        ]
        joint_scenes.append(sim_agents_submission_pb2.JointScene(simulated_trajectories=simulated))
    rollouts = sim_agents_submission_pb2.ScenarioRollouts(
        scenario_id=scenario.scenario_id, joint_scenes=joint_scenes
    )
    try:
        if num_rollouts == submission_specs.get_submission_config(CHALLENGE).n_rollouts:
            submission_specs.validate_scenario_rollouts(rollouts, scenario, CHALLENGE)
        else:  # Fewer rollouts (quick tests, metrics sweeps): still check every joint scene.
            for joint_scene in rollouts.joint_scenes:
                submission_specs.validate_joint_scene(joint_scene, scenario, CHALLENGE)
    except ValueError as e:
        raise ValueError(f"{where}: invalid rollouts: {e}") from e
    stats = RolloutStats(
        num_sim_agents=len(sim_ids), num_model_agents=len(rows), num_fallback_agents=len(fallback)
    )
    return rollouts, stats
