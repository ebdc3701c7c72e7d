"""A WOSAC submission on the challenge's own input: history-only (test-split) Scenario protos.

Inputs: the real test-split proto fcb5b4973f486e78 (11 steps, 10 sim agents), the real 257-track
proto ee519cf571686d19 cut to its 11 history steps (84 sim agents), and a synthetic scene with
142 sim agents cut the same way (the bundled real scenes have at most 84, so >128 needs it).
`python -m export.wosac_submission` runs with an exported constant-velocity baseline and with an
exported trained policy; every shard of the tarball passes the official validator, every
official sim agent is covered (the model's 128 + the constant-velocity fallback), and the
counts are in stats.json and the last lines of the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest
import tensorflow as tf
from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2
from waymo_open_dataset.utils.sim_agents import submission_specs

from export import export_model, signature
from motion_sim.agents.constant_velocity import ConstantVelocityAgent
from motion_sim.data.datatypes import MAX_AGENTS, NUM_HISTORY_STEPS
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.synthetic import SyntheticScenarioGenerator
from tests.export.test_export_model import _trained_model, _write_run
from tests.fixtures import REPO, SAMPLE_DIR, WOMD_SCENARIO_FILE

TEST_SPLIT = os.path.join(SAMPLE_DIR, "test_split_fcb5b4973f486e78.tfrecord")
METADATA_FLAGS = [
    "--account_name=sim@example.com",
    "--method_name=test_split",
    "--authors=Ada",
    "--affiliation=Test Lab",
    "--description=history-only input",
    "--method_link=https://x.y",
    "--num_model_parameters=0",
    "--uses_lidar_data=false",
    "--uses_camera_data=false",
    "--uses_public_model_pretraining=false",
    "--acknowledge_complies_with_closed_loop_requirement=true",
]
# scenario id -> official sim agents (valid at the current step)
SIM_AGENTS = {"fcb5b4973f486e78": 10, "ee519cf571686d19": 84, "synthetic-3-0": 142}


def history_only(scenario: scenario_pb2.Scenario) -> scenario_pb2.Scenario:
    """The scene as the test split ships it: timestamps, states and lights of steps 0..10."""
    cut = scenario_pb2.Scenario()
    cut.CopyFrom(scenario)
    del cut.timestamps_seconds[NUM_HISTORY_STEPS:]
    del cut.dynamic_map_states[NUM_HISTORY_STEPS:]
    for track in cut.tracks:
        del track.states[NUM_HISTORY_STEPS:]
    return cut


def _first(path):
    return scenario_pb2.Scenario.FromString(next(iter(tf.data.TFRecordDataset(path))).numpy())


@pytest.fixture(scope="module")
def test_split_files(tmp_path_factory):
    """Glob of the three history-only inputs, and their protos by id."""
    directory = tmp_path_factory.mktemp("test_split")
    made = [
        history_only(_first(WOMD_SCENARIO_FILE)),
        history_only(
            to_scenario_proto(SyntheticScenarioGenerator(num_agents=150, seed=3).generate(0))
        ),
    ]
    path = str(directory / "cut_history.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for scenario in made:
            writer.write(scenario.SerializeToString())
    protos = {s.scenario_id: s for s in made + [_first(TEST_SPLIT)]}
    return f"{TEST_SPLIT},{path}", protos


def _submit(saved_model, scenarios, out):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "export.wosac_submission",
            f"--saved_model={saved_model}",
            f"--scenarios={scenarios}",
            f"--output_dir={out}",
            "--shard_size=2",
            "--seed=3",
            *METADATA_FLAGS,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
        check=False,
    )


def _check_submission(result, out, protos):
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "stats.json") as f:
        stats = json.load(f)
    fallback = SIM_AGENTS["synthetic-3-0"] - MAX_AGENTS
    expected = {
        "scenarios_written": 3,
        "scenarios_skipped": 0,
        "history_only_scenarios": 3,
        "sim_agents": sum(SIM_AGENTS.values()),
        "model_agents": sum(SIM_AGENTS.values()) - fallback,
        "fallback_agents": fallback,
        "scenarios_with_fallback": 1,
    }
    assert {k: stats[k] for k in expected} == expected
    assert json.loads(result.stdout.strip().splitlines()[-1])["fallback_agents"] == fallback
    assert (
        "3 scenarios (3 history-only) cover 236 sim agents: 222 by the model, 14 by the "
        "constant-velocity fallback" in result.stderr
    )
    # The tarball is what gets uploaded: every scenario in it passes the official validator.
    unpacked = out / "unpacked"
    with tarfile.open(out / "submission.tar.gz") as tar:
        tar.extractall(unpacked)
    seen = {}
    for name in sorted(os.listdir(unpacked)):
        submission = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(
            (unpacked / name).read_bytes()
        )
        assert submission.submission_type == submission.SIM_AGENTS_SUBMISSION
        for rollouts in submission.scenario_rollouts:
            scenario = protos[rollouts.scenario_id]
            submission_specs.validate_scenario_rollouts(rollouts, scenario)
            seen[rollouts.scenario_id] = len(rollouts.joint_scenes[0].simulated_trajectories)
    assert seen == SIM_AGENTS
    return stats


def test_baseline_submission_on_history_only_scenes(test_split_files, tmp_path):
    scenarios, protos = test_split_files
    model = signature.export_sim_agent(ConstantVelocityAgent(), str(tmp_path / "cv"))
    _check_submission(_submit(model, scenarios, tmp_path / "out"), tmp_path / "out", protos)


@pytest.mark.slow
def test_trained_policy_submission_on_history_only_scenes(test_split_files, tmp_path):
    """An exported trained policy (the export tests' tiny run, 32 rollouts as WOSAC needs)."""
    scenarios, protos = test_split_files
    root = _write_run(tmp_path / "run", _trained_model(seed=1))
    model = export_model.export_run(root, str(tmp_path / "model"), num_rollouts=32)
    _check_submission(_submit(model, scenarios, tmp_path / "out"), tmp_path / "out", protos)
