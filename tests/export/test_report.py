"""`python -m export.report`: baselines and SavedModels through one path, report.json + Table 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from waymo_open_dataset.protos import sim_agents_metrics_pb2

from export import export_model, report
from motion_sim.metrics import backend as backend_lib
from tests.fixtures import METRICS_TESTDATA, SCENARIO_FILES

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMALL = SCENARIO_FILES[0]  # 637f20cafde22ff8, 50 sim agents
# 84 sim agents; the fast backend scores it without widening its map search (637f20 needs
# 16x, an XLA compile of many minutes on a 2-core box).
BIG = SCENARIO_FILES[1]
REFERENCE = os.path.join(METRICS_TESTDATA, "official_reference.json")


def test_parse_named_models_keeps_order_and_rejects_bad_values():
    assert list(report.parse_named_models(["b=/x", "a = /y"]).items()) == [("b", "/x"), ("a", "/y")]
    for bad in (["nodir"], ["=/x"], ["name="]):
        with pytest.raises(ValueError, match="expected NAME=DIR"):
            report.parse_named_models(bad)
    with pytest.raises(ValueError, match="'a' given twice"):
        report.parse_named_models(["a=/x", "a=/y"])


def test_name_clash_and_unknown_baseline_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"names \['random'\] clash with --baselines"):
        report.run_report(SMALL, str(tmp_path), ["random"], {"random": "/m"})
    with pytest.raises(ValueError, match="unknown baseline"):
        report.export_baselines(["kalman"], str(tmp_path))
    with pytest.raises(ValueError, match="nothing to score"):
        report.score_saved_models({}, SMALL)


@pytest.mark.slow  # the official metric code: ~1-7 min for 2 rollout sets on the shared box
def test_official_backend_report(cv_saved_model, tmp_path):
    """The constant-velocity baseline, exported by the report and given again as --saved_model,
    scores identically both ways and matches the checked-in official reference for
    constant-velocity rollouts of the same scenario."""
    results = report.run_report(
        SMALL,
        str(tmp_path),
        ["constant_velocity"],
        {"cv_saved_model": cv_saved_model},
        year="2025",
        backend="official",
    )
    assert list(results) == ["constant_velocity", "cv_saved_model"]
    baseline, given = results["constant_velocity"], results["cv_saved_model"]
    assert baseline["buckets"] == given["buckets"]
    assert baseline["aggregate"] == given["aggregate"]
    assert baseline["num_model_parameters"] == 0 and given["num_model_parameters"] is None
    assert baseline["rollout_stats"]["num_sim_agents"] == 50
    ref = json.load(open(REFERENCE))["2025/637f20cafde22ff8/constant_velocity"]
    got = baseline["scenarios"]["637f20cafde22ff8"]
    # Same trajectories up to float32 world coordinates (the reference is float64 numpy).
    for key in (
        "metametric",
        "average_displacement_error",
        "linear_speed_likelihood",
        "distance_to_road_edge_likelihood",
        "collision_indication_likelihood",
    ):
        assert got[key] == pytest.approx(ref[key], abs=2e-3), key

    saved = json.load(open(tmp_path / "report.json"))
    assert saved["config"] == "2025" and saved["backend"] == "official"
    assert saved["num_scenarios"] == 1 and saved["order"] == list(results)
    assert saved["methods"]["constant_velocity"]["buckets"] == baseline["buckets"]
    table = (tmp_path / "table1.md").read_text().splitlines()
    assert table[0].startswith("| Method | Realism meta-metric")
    assert [row.split("|")[1].strip() for row in table[2:]] == list(results)
    assert f"{baseline['buckets']['realism_meta_metric']:.4f}" in table[2]
    assert os.path.exists(tmp_path / "baselines" / "constant_velocity" / "saved_model.pb")


class _DisplacementBackend:
    """Stand-in for the WOSAC backends (minutes of XLA compile or eager TF per scenario here):
    the real mean / min-over-rollouts displacement from the log, in `SimAgentMetrics` form, so
    the report's plumbing (every method on every scenario, same path, order, aggregation,
    files) is tested in the default suite; the slow tests run the real backends."""

    def __init__(self, kind, config, num_workers):
        del kind, config, num_workers

    def map(self, triples):
        for _, scenario, rollouts in triples:
            tracks = {t.id: t for t in scenario.tracks}
            errors = []  # [agents][R] mean displacement over valid logged steps
            for traj_index in range(len(rollouts.joint_scenes[0].simulated_trajectories)):
                per_rollout = []
                for scene in rollouts.joint_scenes:
                    traj = scene.simulated_trajectories[traj_index]
                    states = tracks[traj.object_id].states[11:]
                    valid = np.array([s.valid for s in states])
                    log = np.array([[s.center_x, s.center_y] for s in states])
                    sim = np.stack([traj.center_x, traj.center_y], axis=-1)
                    d = np.linalg.norm(sim - log, axis=-1)
                    per_rollout.append(d[valid].mean() if valid.any() else 0.0)
                errors.append(per_rollout)
            errors = np.array(errors)
            ade = float(errors.mean())
            yield sim_agents_metrics_pb2.SimAgentMetrics(
                scenario_id=scenario.scenario_id,
                metametric=1.0 / (1.0 + ade),
                average_displacement_error=ade,
                min_average_displacement_error=float(errors.mean(axis=0).min()),
            )


def test_report_scores_every_method_through_the_saved_model_path(
    cv_saved_model, tmp_path, monkeypatch
):
    monkeypatch.setattr(backend_lib, "make_backend", _DisplacementBackend)
    scenarios = ",".join(SCENARIO_FILES)
    results = report.run_report(
        scenarios,
        str(tmp_path),
        ["constant_velocity", "logged_oracle"],
        {"cv_again": cv_saved_model},
        year="2025",
        backend="fast",
        seed=4,
    )
    assert list(results) == ["constant_velocity", "logged_oracle", "cv_again"]
    for name, result in results.items():
        assert result["num_scenarios"] == 2, name
        assert set(result["scenarios"]) == {"637f20cafde22ff8", "ee519cf571686d19"}, name
        # 50 + 84 sim agents; the 84-agent scene fits in MAX_AGENTS, so no fallback.
        assert result["rollout_stats"] == {
            "num_sim_agents": 134,
            "num_model_agents": 134,
            "num_fallback_agents": 0,
        }, name
    cv, oracle = results["constant_velocity"], results["logged_oracle"]
    # The baseline exported by the report and the same model given as --saved_model agree.
    assert results["cv_again"]["aggregate"] == cv["aggregate"]
    assert results["cv_again"]["saved_model"] == cv_saved_model
    assert cv["num_model_parameters"] == 0 and results["cv_again"]["num_model_parameters"] is None
    # The logged oracle replays the log wherever it is valid.
    assert oracle["aggregate"]["average_displacement_error"] < 1e-3
    assert cv["aggregate"]["average_displacement_error"] > 0.5
    assert cv["buckets"]["min_ade"] == pytest.approx(
        np.mean([m["min_average_displacement_error"] for m in cv["scenarios"].values()]), rel=1e-5
    )

    saved = json.load(open(tmp_path / "report.json"))
    assert saved["config"] == "2025" and saved["seed"] == 4 and saved["num_scenarios"] == 2
    assert saved["scenarios"] == scenarios
    assert saved["order"] == list(results) and set(saved["methods"]) == set(results)
    table = (tmp_path / "table1.md").read_text().splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == list(results)
    assert f"{oracle['buckets']['min_ade']:.4f}" in table[3]


def test_cli_bad_saved_model_flag_exits_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.report",
            f"--scenarios={SMALL}",
            f"--output={tmp_path}",
            "--saved_model=no_equals_sign",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    assert result.returncode == 2
    assert "report: error: --saved_model='no_equals_sign': expected NAME=DIR" in result.stderr
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_cli_fast_backend_with_a_trained_model(tmp_path):
    """Trained (tiny) model exported with 32 rollouts + the logged oracle, fast backend, CLI."""
    from tests.export.test_export_model import _trained_model, _write_run

    root = _write_run(tmp_path / "run", _trained_model(seed=3))
    model_dir = export_model.export_run(root, str(tmp_path / "tiny"), num_rollouts=32)
    out = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.report",
            f"--scenarios={BIG}",
            f"--output={out}",
            "--baselines=logged_oracle",
            f"--saved_model=tiny={model_dir}",
            "--backend=fast",
            "--config=2025",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.load(open(out / "report.json"))
    oracle, tiny = saved["methods"]["logged_oracle"], saved["methods"]["tiny"]
    assert tiny["num_model_parameters"] > 1000
    assert tiny["rollout_stats"]["num_model_agents"] == 84
    # The log replayed beats an untrained policy on realism and displacement.
    assert oracle["buckets"]["realism_meta_metric"] > tiny["buckets"]["realism_meta_metric"]
    assert oracle["buckets"]["min_ade"] < tiny["buckets"]["min_ade"]
    assert "| tiny |" in (out / "table1.md").read_text()
