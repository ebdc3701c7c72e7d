"""`FastMetrics.metrics_from_protos`: the scene-arrays reuse is opt-in and keyed by the object.

The compiled maths is checked against the official code in test_fast_vs_official.py; here the
conversion and scoring are stubbed to count how often a scene is converted.
"""

from motion_sim.metrics import config as config_lib
from motion_sim.metrics import fast_metrics


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
