"""`motion_sim.evaluate`: results layout, Table 1, and a clear error for each bad input."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from waymo_open_dataset.protos import sim_agents_submission_pb2

from motion_sim import evaluate
from motion_sim.metrics import results as results_lib
from motion_sim.metrics import rollout_checks
from tests.fixtures import rollouts as rollout_fixtures

SMALL = str(rollout_fixtures.SCENARIO_FILES["637f20cafde22ff8"])
BIG = str(rollout_fixtures.SCENARIO_FILES["ee519cf571686d19"])
REFERENCE = json.loads((rollout_fixtures.TESTDATA / "official_reference.json").read_text())


@pytest.fixture(scope="module")
def good_rollouts():
    scenario = rollout_fixtures.load_scenario(SMALL)
    return rollout_fixtures.make_rollouts(scenario, "constant_velocity")


def _write(tmp_path, rollouts, name="rollouts.binproto"):
    path = tmp_path / name
    path.write_bytes(rollouts.SerializeToString())
    return str(path)


def _broken(good, edit):
    rollouts = sim_agents_submission_pb2.ScenarioRollouts()
    rollouts.CopyFrom(good)
    edit(rollouts)
    return rollouts


def _drop_agent(r):
    del r.joint_scenes[3].simulated_trajectories[7]


def _short_track(r):
    del r.joint_scenes[2].simulated_trajectories[1].center_x[-1]


def _nan(r):
    r.joint_scenes[5].simulated_trajectories[0].center_y[17] = math.nan


def _unknown_id(r):
    r.scenario_id = "deadbeefdeadbeef"


def _too_few_rollouts(r):
    del r.joint_scenes[-1]


@pytest.mark.parametrize(
    "edit, message",
    [
        (_drop_agent, r"rollout 3 is missing sim agent\(s\) \[\d+\]"),
        (_short_track, "rollout 2 object .*center_x has 79 steps, expected 80"),
        (_nan, "rollout 5 object .*center_y is nan at simulated step 17"),
        (_unknown_id, "unknown id: scenario 'deadbeefdeadbeef'"),
        (_too_few_rollouts, "31 rollouts, expected 32"),
    ],
)
def test_bad_rollouts_raise_clear_errors(good_rollouts, tmp_path, edit, message):
    path = _write(tmp_path, _broken(good_rollouts, edit))
    with pytest.raises(rollout_checks.RolloutError, match=message) as err:
        evaluate.evaluate(SMALL, rollout_pattern=path, backend="fast")
    assert "rollouts.binproto" in str(err.value)  # names the file


def test_missing_scenario_and_results_layout(good_rollouts, tmp_path):
    path = _write(tmp_path, good_rollouts)
    with pytest.raises(rollout_checks.RolloutError, match=r"missing 1 scenario.*ee519cf571686d19"):
        evaluate.evaluate(f"{SMALL},{BIG}", rollout_pattern=path, year="2025", backend="fast")
    results = evaluate.evaluate(SMALL, rollout_pattern=path, year="2025", backend="fast")
    assert set(results["scenarios"]) == {"637f20cafde22ff8"}
    assert set(results["aggregate"]) == set(results_lib.METRIC_FIELDS)
    assert set(results["buckets"]) == set(results_lib.BUCKET_FIELDS)
    reference = REFERENCE["2025/637f20cafde22ff8/constant_velocity"]
    assert results["aggregate"]["metametric"] == pytest.approx(reference["metametric"], abs=1e-3)
    assert results["buckets"]["realism_meta_metric"] == results["aggregate"]["metametric"]
    timing = results["timing"]
    assert timing["compilations"] <= 1 and timing["fallback_steps"] == 0
    assert timing["features"] + timing["compile"] > 0 and timing["arrays"] > 0
    line = results_lib.time_split(results)
    assert "decode + validate rollouts" in line and "compile" in line and "features" in line
    out = tmp_path / "res.json"
    results_lib.write_json(out, results)
    assert json.loads(out.read_text())["buckets"] == results["buckets"]


def test_table1_rows_and_columns(tmp_path):
    row = {
        "buckets": {
            "realism_meta_metric": 0.71234,
            "kinematic_metrics": 0.4,
            "interactive_metrics": 0.8,
            "map_based_metrics": 0.85,
            "min_ade": 1.5,
        },
        "aggregate": {"average_displacement_error": 3.25},
    }
    path = tmp_path / "t.md"
    results_lib.write_table1({"MotionLM BC": row, "RL fine-tuned": row}, path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("| Method | Realism meta-metric")
    assert [c.strip() for c in lines[0].split("|")[2:-1]][-2:] == ["minADE (m) ↓", "ADE (m) ↓"]
    assert lines[2] == "| MotionLM BC | 0.7123 | 0.4000 | 0.8000 | 0.8500 | 1.5000 | 3.2500 |"
    assert len(lines) == 4
    with pytest.raises(ValueError, match="lack buckets.realism_meta_metric"):
        results_lib.table1_markdown({"x": {"buckets": {}, "aggregate": {}}})


def test_cli_reports_bad_input_and_exit_code(good_rollouts, tmp_path):
    path = _write(tmp_path, _broken(good_rollouts, _unknown_id))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.evaluate",
            f"--scenarios={SMALL}",
            f"--rollouts={path}",
            "--config=2025",
            "--backend=fast",
            f"--output={tmp_path / 'out.json'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unknown id: scenario 'deadbeefdeadbeef'" in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_cli_requires_exactly_one_source(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.evaluate",
            f"--scenarios={SMALL}",
            "--rollouts=x",
            "--saved_model=y",
            f"--output={tmp_path / 'o.json'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0
    assert "exactly one of --rollouts / --saved_model" in proc.stderr


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    out = tmp_path / "wosac.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.evaluate",
            f"--scenarios={SMALL}",
            f"--rollouts={rollout_fixtures.TEST_SUBMISSION}",
            "--config=2025",
            "--backend=fast",
            f"--output={out}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["aggregate"]["metametric"] == pytest.approx(
        REFERENCE["2025/test_submission"]["metametric"], abs=1e-3
    )
    assert "| wosac |" in out.with_suffix(".md").read_text()


@pytest.mark.slow
def test_official_and_fast_backends_two_workers_two_scenarios(tmp_path):
    # Spawned worker processes (num_workers=2) over both shared scenarios must give the
    # single-process official numbers (the checked-in reference) and the fast backend's (also
    # with two workers).
    for scenario_id, path in rollout_fixtures.SCENARIO_FILES.items():
        rollouts = rollout_fixtures.make_rollouts(
            rollout_fixtures.load_scenario(path), "constant_velocity", seed=0
        )
        _write(tmp_path, rollouts, f"{scenario_id}.binproto")
    pattern = str(tmp_path / "*.binproto")
    official = evaluate.evaluate(
        f"{SMALL},{BIG}", rollout_pattern=pattern, year="2025", backend="official", num_workers=2
    )
    fast = evaluate.evaluate(
        f"{SMALL},{BIG}", rollout_pattern=pattern, year="2025", backend="fast", num_workers=2
    )
    # Two spawned fast workers: each compiles the buckets it meets (2 scenes, 2 buckets).
    assert fast["num_workers"] == 2 and 1 <= fast["timing"]["compilations"] <= 2
    assert official["backend"] == "official" and official["num_scenarios"] == 2
    assert set(official["scenarios"]) == set(rollout_fixtures.SCENARIO_FILES)
    for scenario_id, values in official["scenarios"].items():
        single = REFERENCE[f"2025/{scenario_id}/constant_velocity"]
        for field in results_lib.METRIC_FIELDS:
            assert values[field] == pytest.approx(single.get(field, 0.0), abs=1e-6), (
                scenario_id,
                field,
            )
            assert fast["scenarios"][scenario_id][field] == pytest.approx(
                values[field], abs=1e-3
            ), (scenario_id, field)
    for field in results_lib.METRIC_FIELDS:
        assert fast["aggregate"][field] == pytest.approx(official["aggregate"][field], abs=1e-3), (
            field
        )


class _MaskingRunner:
    """Stands in for a loaded SavedModel: drives the agents `keep` selects of the scene's real
    agents at constant velocity (so the scores are sane), masks out the rest (left to the
    evaluator's constant-velocity fallback)."""

    def __init__(self, keep):
        self.keep = keep

    def run(self, inputs, seed):
        del seed
        from export import scenario_rollouts  # pylint: disable=import-outside-toplevel

        mask = np.asarray(inputs["agent_mask"])[0]
        ids = np.asarray(inputs["agent_id"], np.int64)[0]
        scenario = rollout_fixtures.load_scenario(SMALL)
        cv = scenario_rollouts.fallback_trajectories(scenario, [int(i) for i in ids[mask]])
        traj = np.zeros([1, 32, len(ids), 80, 4], np.float32)
        for row in np.flatnonzero(mask):
            traj[0, :, row] = cv[int(ids[row])]
        return {
            "trajectories": traj,
            "object_ids": ids[None],
            "agent_mask": (mask & self.keep(np.arange(len(ids))))[None],
        }


def _fake_model(monkeypatch, keep):
    from export import saved_model_rollouts  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(saved_model_rollouts, "load_cached", lambda d: _MaskingRunner(keep))


def test_model_that_simulates_no_agent_is_an_error(monkeypatch):
    _fake_model(monkeypatch, lambda rows: np.zeros_like(rows, bool))
    with pytest.raises(
        rollout_checks.RolloutError, match="simulated no agent of scenario 637f20cafde22ff8"
    ):
        evaluate.evaluate(SMALL, saved_model="fake_model", backend="fast")


def test_fallback_counts_are_written(monkeypatch, capsys):
    _fake_model(monkeypatch, lambda rows: rows % 2 == 0)  # every other agent slot
    results = evaluate.evaluate(
        SMALL, saved_model="fake_model", backend="fast", max_fallback_fraction=0.1
    )
    fallback = results["fallback"]
    assert fallback["num_scenarios"] == fallback["scenarios_with_fallback"] == 1
    assert 0 < fallback["fallback_agents"] < fallback["sim_agents"]
    # Slots alternate, so about half the sim agents are fallback.
    assert fallback["fallback_agent_fraction"] == pytest.approx(0.5, abs=0.05)
    err = capsys.readouterr().err
    assert (
        f"fallback drove {fallback['fallback_agents']} of {fallback['sim_agents']} sim agents"
        in err
    )
    assert "WARNING" in err and "max_fallback_fraction=0.1" in err


def test_fallback_warning_only_above_threshold(capsys):
    fallback = {
        "sim_agents": 100,
        "fallback_agents": 5,
        "fallback_agent_fraction": 0.05,
        "scenarios_with_fallback": 2,
        "num_scenarios": 3,
    }
    results_lib.report_fallback(fallback, "m", max_fraction=0.1)
    err = capsys.readouterr().err
    assert "drove 5 of 100 sim agents (5.00%) in 2 of 3 scenarios" in err
    assert "WARNING" not in err
    results_lib.report_fallback(fallback, "m", max_fraction=0.01)
    assert "WARNING: 5.00% of sim agents were driven by the constant-velocity fallback" in (
        capsys.readouterr().err
    )
