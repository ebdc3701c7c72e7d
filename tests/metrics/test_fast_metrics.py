"""`FastMetrics`: the scene-arrays reuse is opt-in and keyed by the object; several configs
share one feature computation.

The compiled maths is checked against the official code in test_fast_vs_official.py; the reuse
test stubs the conversion and scoring to count how often a scene is converted.
"""

from motion_sim.metrics import config as config_lib
from motion_sim.metrics import fast_metrics, scenario_arrays
from tests.fixtures import rollouts as rollout_fixtures


def _conversions(monkeypatch, reuse: bool, scenarios: list) -> int:
    calls = []
    monkeypatch.setattr(
        fast_metrics.arrays_lib, "scenario_arrays", lambda s, source: calls.append(s) or s
    )
    monkeypatch.setattr(fast_metrics.arrays_lib, "rollout_arrays", lambda a, r, source: r)
    monkeypatch.setattr(fast_metrics.FastMetrics, "scenario_metrics", lambda self, a, r: (a, r))
    fast = fast_metrics.FastMetrics(config_lib.load_config("2025"), reuse_scene_arrays=reuse)
    for i, scenario in enumerate(scenarios):
        assert fast.metrics_from_protos(scenario, f"rollouts{i}") == (scenario, f"rollouts{i}")
    return len(calls)


def test_scene_arrays_are_reused_only_when_asked_and_only_for_the_same_object(monkeypatch):
    a, b = object(), object()
    # A report: several methods' rollouts of one scene in a row, then the next scene.
    assert _conversions(monkeypatch, True, [a, a, a, b, b, a]) == 3
    # Default (a benchmark timing repeated calls): every call converts.
    assert _conversions(monkeypatch, False, [a, a, a, b, b, a]) == 6


def test_features_once_for_several_configs_equal_one_config_at_a_time():
    """`scenario_metrics_by_config` (the experiment scores 2023 and 2025 together) computes the
    features once and gives each config exactly what its own `scenario_metrics` gives."""
    scenario = rollout_fixtures.load_scenario(next(iter(rollout_fixtures.SCENARIO_FILES.values())))
    arrays = scenario_arrays.scenario_arrays(scenario)
    rollouts = scenario_arrays.rollout_arrays(
        arrays, rollout_fixtures.make_rollouts(scenario, "noisy_log")
    )
    m2025, m2023 = (fast_metrics.FastMetrics(config_lib.load_config(y)) for y in ("2025", "2023"))
    traces = fast_metrics.FastMetrics.num_traces()
    together = m2025.scenario_metrics_by_config(arrays, rollouts, (m2023,))
    # One feature call for both configs (a new trace at most once, for a new bucket).
    assert fast_metrics.FastMetrics.num_traces() - traces <= 1
    alone = [
        fast_metrics.FastMetrics(config_lib.load_config(y)).scenario_metrics(arrays, rollouts)
        for y in ("2025", "2023")
    ]
    assert together == alone
    # The 2023 and 2025 configs weigh the features differently: not one result twice.
    assert together[0].metametric != together[1].metametric
    assert m2023.seconds["features"] + m2023.seconds["compile"] > 0
