"""Validation of `ScenarioRollouts` against their `Scenario`, with messages naming what is wrong.

The official `submission_specs.validate_scenario_rollouts` is run too, but its messages do not
name the scenario, rollout or step ("Invalid center_x tensor length"), and it accepts NaN
coordinates; the checks here come first so the user gets the precise cause.
"""

from __future__ import annotations

import numpy as np
from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2
from waymo_open_dataset.utils.sim_agents import submission_specs

from motion_sim.data.datatypes import ScenarioError
from motion_sim.metrics import rollout_decode

_CHALLENGE = submission_specs.ChallengeType.SIM_AGENTS
_SPEC = submission_specs.get_submission_config(_CHALLENGE)
_FIELDS = rollout_decode.COORD_NAMES


class RolloutError(ScenarioError):
    """A submission / rollout file that cannot be scored; names the file, scenario and cause."""


def check_rollout_values(
    rollouts: sim_agents_submission_pb2.ScenarioRollouts, source: str = ""
) -> None:
    """Raises `RolloutError` on a wrong step count or a non-finite coordinate."""
    where = f"{source} scenario {rollouts.scenario_id}".strip()
    for r, scene in enumerate(rollouts.joint_scenes):
        for traj in scene.simulated_trajectories:
            for field, values in zip(_FIELDS, rollout_decode.coordinates(traj)):
                if len(values) != _SPEC.n_simulation_steps:
                    raise RolloutError(
                        where,
                        f"rollout {r} object {traj.object_id}: {field} has {len(values)} steps, "
                        f"expected {_SPEC.n_simulation_steps}",
                        reason="wrong_step_count",
                    )
                bad = np.nonzero(~np.isfinite(values))[0]
                if len(bad):
                    raise RolloutError(
                        where,
                        f"rollout {r} object {traj.object_id}: {field} is {values[bad[0]]} at "
                        f"simulated step {bad[0]} ({len(bad)} non-finite values)",
                        reason="non_finite",
                    )


def validate_rollouts(
    rollouts: sim_agents_submission_pb2.ScenarioRollouts,
    scenario: scenario_pb2.Scenario,
    source: str = "",
) -> None:
    """Full check of `rollouts` for `scenario`; raises `RolloutError` naming the problem."""
    where = f"{source} scenario {rollouts.scenario_id}".strip()
    if rollouts.scenario_id != scenario.scenario_id:
        raise RolloutError(
            where,
            f"rollouts are for scenario {rollouts.scenario_id!r} but were "
            f"paired with scenario {scenario.scenario_id!r}",
            reason="unknown_id",
        )
    if len(rollouts.joint_scenes) != _SPEC.n_rollouts:
        raise RolloutError(
            where,
            f"{len(rollouts.joint_scenes)} rollouts, expected {_SPEC.n_rollouts}",
            reason="wrong_rollout_count",
        )
    check_rollout_values(rollouts, source)
    sim_ids = set(submission_specs.get_sim_agent_ids(scenario, _CHALLENGE))
    for r, scene in enumerate(rollouts.joint_scenes):
        ids = [t.object_id for t in scene.simulated_trajectories]
        missing = sorted(sim_ids - set(ids))
        if missing:
            raise RolloutError(
                where,
                f"rollout {r} is missing sim agent(s) {missing[:10]} (every "
                f"object valid at step {_SPEC.current_time_index} must be simulated)",
                reason="missing_agent",
            )
        extra = sorted(set(ids) - sim_ids)
        if extra:
            raise RolloutError(
                where,
                f"rollout {r} has object(s) {extra[:10]} that are not sim agents of the scenario",
                reason="unknown_agent",
            )
        if len(ids) != len(set(ids)):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise RolloutError(
                where, f"rollout {r} repeats object(s) {dup[:10]}", reason="duplicate_agent"
            )
    try:
        submission_specs.validate_scenario_rollouts(rollouts, scenario, _CHALLENGE)
    except ValueError as e:
        raise RolloutError(where, f"official validation failed: {e}") from e
