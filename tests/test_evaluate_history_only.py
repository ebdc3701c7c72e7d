"""`motion_sim.evaluate` on history-only (test-split) scenes: rollouts yes, scores no.

Scoring needs the logged future, so each refusal is one line naming the scene (exit 2, no
traceback); `--saved_model` still generates and validates the rollouts and, with
`--rollouts_output`, writes them.
"""

import json
import os

import pytest
from waymo_open_dataset.protos import scenario_pb2
from waymo_open_dataset.utils.sim_agents import submission_specs

from export import signature
from motion_sim.agents.constant_velocity import ConstantVelocityAgent
from motion_sim.metrics import rollouts_io
from tests.fixtures import SAMPLE_DIR, SCENARIO_FILE, cli

TEST_SPLIT = os.path.join(SAMPLE_DIR, "test_split_fcb5b4973f486e78.tfrecord")
NO_FUTURE = (
    "scenario 'fcb5b4973f486e78' has no logged future to score against "
    "(history-only: 11 steps, the test split)"
)


@pytest.fixture(scope="module")
def cv_model(tmp_path_factory):
    return signature.export_sim_agent(
        ConstantVelocityAgent(), str(tmp_path_factory.mktemp("models") / "cv")
    )


def _evaluate(*args):
    return cli.run_module("motion_sim.evaluate", *args)


FALLBACK_REPORT = "evaluate: constant-velocity fallback drove "


def _one_error_line(result):
    """The one `evaluate:` line that is not the --saved_model fallback count report."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("evaluate:") and not line.startswith(FALLBACK_REPORT)
    ]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def test_scoring_rollouts_of_a_history_only_scene_is_one_line(tmp_path):
    rollouts = tmp_path / "r.binproto"
    rollouts.write_bytes(b"")  # never read: the scene is refused first
    line = _one_error_line(
        _evaluate(
            f"--scenarios={TEST_SPLIT}", f"--rollouts={rollouts}", f"--output={tmp_path / 'o.json'}"
        )
    )
    assert line == f"evaluate: bad input: {TEST_SPLIT}:0: {NO_FUTURE}"
    assert not (tmp_path / "o.json").exists()


@pytest.mark.slow  # ~40 s: two CLI runs with a SavedModel
def test_saved_model_generates_rollouts_but_does_not_score(cv_model, tmp_path):
    result = _evaluate(
        f"--scenarios={TEST_SPLIT}",
        f"--saved_model={cv_model}",
        f"--output={tmp_path / 'o.json'}",
    )
    line = _one_error_line(result)
    # The rollouts were generated: the fallback report counts the scene's 10 sim agents.
    assert f"{FALLBACK_REPORT}0 of 10 sim agents" in result.stderr, result.stderr[-3000:]
    assert NO_FUTURE in line and "pass --rollouts_output=FILE to keep them" in line
    out = tmp_path / "rollouts.binproto"
    result = _evaluate(
        f"--scenarios={TEST_SPLIT}",
        f"--saved_model={cv_model}",
        f"--output={tmp_path / 'o.json'}",
        f"--rollouts_output={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote the rollouts of 1 history-only scenario(s) to {out}" in result.stdout
    ((_, rollouts),) = list(rollouts_io.read_rollouts(str(out)))
    assert rollouts.scenario_id == "fcb5b4973f486e78" and len(rollouts.joint_scenes) == 32
    scenario = next(s for _, s in rollouts_io.read_scenarios(TEST_SPLIT))
    assert isinstance(scenario, scenario_pb2.Scenario)
    submission_specs.validate_scenario_rollouts(rollouts, scenario)
    assert len(rollouts.joint_scenes[0].simulated_trajectories) == 10


@pytest.mark.slow
def test_mixed_inputs_score_the_full_scene_and_list_the_other(cv_model, tmp_path):
    out = tmp_path / "rollouts.binproto"
    result = _evaluate(
        f"--scenarios={TEST_SPLIT},{SCENARIO_FILE}",
        f"--saved_model={cv_model}",
        f"--output={tmp_path / 'o.json'}",
        f"--rollouts_output={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "o.json").read_text())
    assert results["num_scenarios"] == 1 and list(results["scenarios"]) == ["637f20cafde22ff8"]
    assert [u["scenario_id"] for u in results["unscored"]] == ["fcb5b4973f486e78"]
    assert sorted(r.scenario_id for _, r in rollouts_io.read_rollouts(str(out))) == [
        "637f20cafde22ff8",
        "fcb5b4973f486e78",
    ]
