"""The fast (XLA) backend equals the official waymo-open-dataset metrics within 1e-3.

Default suite: against `tests/testdata/metrics/official_reference.json`, written once by
`tests/fixtures/make_metrics_reference.py` with the official code (minutes per case).
`slow`: live official run.
"""

import json

import pytest
import tensorflow as tf

from motion_sim.metrics import config as config_lib
from motion_sim.metrics import fast_interaction, fast_map_features, fast_metrics, scenario_arrays
from motion_sim.metrics import results as results_lib
from tests.fixtures import rollouts as rollout_fixtures

TOLERANCE = 1e-3
REFERENCE = json.loads((rollout_fixtures.TESTDATA / "official_reference.json").read_text())
_CASES = {name: (scenario, rollouts) for name, scenario, rollouts in rollout_fixtures.cases()}


def _fast(year, case):
    scenario, rollouts = _CASES[case]
    arrays = scenario_arrays.scenario_arrays(scenario)
    fast = fast_metrics.FastMetrics(config_lib.load_config(year))
    metrics = fast.scenario_metrics(arrays, scenario_arrays.rollout_arrays(arrays, rollouts))
    return results_lib.metrics_to_dict(metrics), fast


def _assert_close(fast, official, label):
    bad = {
        k: (fast[k], official.get(k, 0.0))
        for k in results_lib.METRIC_FIELDS
        if abs(fast[k] - official.get(k, 0.0)) > TOLERANCE
    }
    assert not bad, f"{label}: fast vs official differ on {bad}"


def test_reference_covers_every_case_and_year():
    expected = {f"{y}/{c}" for y in config_lib.CONFIG_YEARS for c in _CASES}
    assert expected <= set(REFERENCE), sorted(expected - set(REFERENCE))


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_fast_matches_official_reference(key):
    year, case = key.split("/", 1)
    fast, backend = _fast(year, case)
    _assert_close(fast, REFERENCE[key], key)
    # The default search budgets settle every reference case in one compiled call.
    assert backend.fallbacks == 0


def test_reference_cases_are_not_trivial():
    # The generated rollouts must exercise the metrics: collisions / off-road somewhere, and
    # different rollout kinds must score differently.
    rates = [
        v["simulated_collision_rate"] + v["simulated_offroad_rate"] for v in REFERENCE.values()
    ]
    assert max(rates) > 0.05
    metas = {round(v["metametric"], 3) for k, v in REFERENCE.items() if k.startswith("2025/")}
    assert len(metas) == len(_CASES)


def test_red_light_case_violates_and_scores_differently():
    # The only reference case with traffic-light violations (official numbers): without it the
    # fast red-light path would never be compared with the official code.
    red_id = f"{rollout_fixtures.RED_LIGHT_SCENARIO}/red_light"
    clean_id = f"{rollout_fixtures.RED_LIGHT_SCENARIO}/constant_velocity"
    for year in config_lib.CONFIG_YEARS:
        red, clean = REFERENCE[f"{year}/{red_id}"], REFERENCE[f"{year}/{clean_id}"]
        assert red["simulated_traffic_light_violation_rate"] > 0.1, year
        assert clean.get("simulated_traffic_light_violation_rate", 0.0) == 0.0, year
        assert (
            clean["traffic_light_violation_likelihood"] - red["traffic_light_violation_likelihood"]
        ) > 0.1, year


def test_search_budget_misses_fall_back_exactly_without_recompiling(monkeypatch):
    # Budgets far below the defaults: many steps miss, the in-call fallbacks (own-step group
    # search, then every segment / object) must give the official numbers in one compiled call.
    monkeypatch.setattr(fast_map_features, "EDGE_GROUPS", (4, 2, 1))
    monkeypatch.setattr(fast_map_features, "STEP_GROUPS", 1)
    monkeypatch.setattr(fast_interaction, "NEAREST_OBJECTS", 1)
    compiled = tf.function(fast_metrics._features, jit_compile=True)  # pylint: disable=protected-access
    monkeypatch.setattr(fast_metrics, "_compiled_features", compiled)
    case = f"{rollout_fixtures.RED_LIGHT_SCENARIO}/red_light"
    fast, backend = _fast("2025", case)
    assert backend.fallbacks == 1 and backend.fallback_steps > 100
    assert compiled.experimental_get_tracing_count() == 1
    _assert_close(fast, REFERENCE[f"2025/{case}"], "small budgets")


def test_compiles_once_per_shape():
    _fast("2025", "test_submission")
    traces = fast_metrics.FastMetrics.num_traces()
    _fast("2024", "test_submission")  # other config, same shapes: no new compilation
    assert fast_metrics.FastMetrics.num_traces() == traces


@pytest.mark.slow
@pytest.mark.parametrize("year", ["2025"])
def test_fast_matches_official_live(year):
    from motion_sim.metrics import official_backend  # pylint: disable=import-outside-toplevel

    scenario, rollouts = _CASES["637f20cafde22ff8/noisy_log"]
    official = official_backend.official_scenario_metrics(
        config_lib.load_config(year), scenario, rollouts
    )
    fast, _ = _fast(year, "637f20cafde22ff8/noisy_log")
    _assert_close(fast, results_lib.metrics_to_dict(official), f"live {year}")


@pytest.fixture(scope="module")
def live_red_light():
    """Live official metrics of the red-light case under every config year: one official feature
    computation (~1 min) shared by the years (`official_metrics_by_config`)."""
    from motion_sim.metrics import official_backend  # pylint: disable=import-outside-toplevel

    case = f"{rollout_fixtures.RED_LIGHT_SCENARIO}/red_light"
    scenario, rollouts = _CASES[case]
    configs = {year: config_lib.load_config(year) for year in config_lib.CONFIG_YEARS}
    live = official_backend.official_metrics_by_config(configs, scenario, rollouts)
    return case, {year: results_lib.metrics_to_dict(m) for year, m in live.items()}


@pytest.mark.slow
@pytest.mark.parametrize("year", sorted(config_lib.CONFIG_YEARS))
def test_official_live_matches_reference_and_fast_every_year(live_red_light, year):
    # The checked-in reference is re-derived live (a stale or mis-generated reference fails),
    # and the fast backend matches the live numbers, for each config year.
    case, live = live_red_light
    official = live[year]
    reference = REFERENCE[f"{year}/{case}"]
    stale = {
        k: (official.get(k, 0.0), reference.get(k, 0.0))
        for k in results_lib.METRIC_FIELDS
        if abs(official.get(k, 0.0) - reference.get(k, 0.0)) > 1e-5
    }
    assert not stale, f"{year}/{case}: live official vs checked-in reference differ on {stale}"
    fast, _ = _fast(year, case)
    _assert_close(fast, official, f"live {year}/{case}")


@pytest.mark.slow
def test_official_live_red_light_violation(live_red_light):
    # Live, the official code sees the red-light run (not only the checked-in numbers).
    _, live = live_red_light
    for year, official in live.items():
        assert official["simulated_traffic_light_violation_rate"] > 0.1, year
        assert official["traffic_light_violation_likelihood"] < 0.95, year


def test_years_share_one_feature_computation():
    # official_metrics_by_config is compute_scenario_metrics_for_bundle split in its two steps.
    import inspect  # pylint: disable=import-outside-toplevel

    from waymo_open_dataset.wdl_limited.sim_agents_metrics import metrics  # pylint: disable=import-outside-toplevel

    source = inspect.getsource(metrics.compute_scenario_metrics_for_bundle)
    assert "compute_scenario_rollouts_features" in source
    assert "compute_scenario_metrics_for_features_bundle" in source


def _hard_rollouts(scenario):
    """32 rollouts: 11 drifting (noisy constant velocity), 11 random agent, 10 colliding."""
    from motion_sim.benchmarks import rollout_kinds  # pylint: disable=import-outside-toplevel

    parts = [
        rollout_kinds.make_rollouts(scenario, kind, seed=1)
        for kind in ("noisy_cv", "random", "colliding")
    ]
    out = type(parts[0])(scenario_id=scenario.scenario_id)
    for i in range(32):
        out.joint_scenes.append(parts[min(i // 11, 2)].joint_scenes[i])
    return out


def _hard_scenarios():
    from motion_sim.data import (
        scenario_writer,  # pylint: disable=import-outside-toplevel
        synthetic,  # pylint: disable=import-outside-toplevel
    )

    small = synthetic.SyntheticScenarioGenerator(
        num_agents=30, lanes_per_direction=2, road_length_m=300.0, seed=3
    )
    return [
        rollout_fixtures.load_scenario(path) for path in rollout_fixtures.SCENARIO_FILES.values()
    ] + [scenario_writer.to_scenario_proto(small.generate(0))]


@pytest.mark.slow
def test_fast_matches_official_live_on_hard_rollouts():
    # Drifting, random and colliding rollouts on three scenes: the dense-map WOMD one, the
    # 257-track WOMD one (84 sim agents) and a small synthetic one (three buckets). One official
    # run per scene (~0.5-1.5 min each on a quiet box).
    from motion_sim.metrics import official_backend  # pylint: disable=import-outside-toplevel

    config = config_lib.load_config("2025")
    fast = fast_metrics.FastMetrics(config)
    scenarios = _hard_scenarios()
    assert max(len(s.tracks) for s in scenarios) > 128
    for scenario in scenarios:
        rollouts = _hard_rollouts(scenario)
        arrays = scenario_arrays.scenario_arrays(scenario)
        got = fast.scenario_metrics(arrays, scenario_arrays.rollout_arrays(arrays, rollouts))
        official = official_backend.official_scenario_metrics(config, scenario, rollouts)
        _assert_close(
            results_lib.metrics_to_dict(got),
            results_lib.metrics_to_dict(official),
            f"hard rollouts on {scenario.scenario_id}",
        )
    assert len({scenario_arrays.scenario_arrays(s).bucket for s in scenarios}) == 3
