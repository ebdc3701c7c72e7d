"""History-only (WOMD test split) scenes in scoring: they have no logged future to score against.

A test-split Scenario carries steps 0..CURRENT_INDEX only. Rollouts can be generated for it (the
sim agent needs only the history), but every WOSAC metric compares them with the logged future,
so `evaluate` refuses to score one (a `RolloutError` naming the scene) and, with
`--saved_model`, keeps the rollouts it generated for them (`write_rollouts`).
"""

from __future__ import annotations

import os

import tensorflow as tf
from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2

from motion_sim.data.datatypes import CURRENT_INDEX
from motion_sim.metrics.rollout_checks import RolloutError


def is_history_only(scenario: scenario_pb2.Scenario) -> bool:
    """True when the scenario has no step after the current one (the test split's 11 steps)."""
    return len(scenario.timestamps_seconds) <= CURRENT_INDEX + 1


def no_future_error(source: str, scenario_id: str, hint: str = "") -> RolloutError:
    """The one-line refusal to score a history-only scene."""
    return RolloutError(
        source,
        f"scenario {scenario_id!r} has no logged future to score "
        f"against (history-only: {CURRENT_INDEX + 1} steps, the test "
        f"split){hint}",
        reason="history_only",
    )


def write_rollouts(path: str, rollouts: list[sim_agents_submission_pb2.ScenarioRollouts]) -> None:
    """Writes rollouts as one `SimAgentsChallengeSubmission` binproto (temp file + rename); the
    metric readers (`rollouts_io`) and `evaluate --rollouts` read it back."""
    submission = sim_agents_submission_pb2.SimAgentsChallengeSubmission(
        scenario_rollouts=rollouts,
        submission_type=sim_agents_submission_pb2.SimAgentsChallengeSubmission.SIM_AGENTS_SUBMISSION,
    )
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(submission.SerializeToString())
    tf.io.gfile.rename(tmp, path, overwrite=True)
