"""Metric configs load by year from package paths, whatever the working directory."""

import os

import pytest

from motion_sim.metrics import config as config_lib


@pytest.mark.parametrize("year", config_lib.CONFIG_YEARS)
def test_loads_from_any_cwd(year, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the wheel's own loader only works from site-packages
    config = config_lib.load_config(year)
    weights = sum(getattr(config, f.name).metametric_weight for f in config.DESCRIPTOR.fields)
    # As published: the 2023 weights add up to 0.99.
    assert weights == pytest.approx(0.99 if year == "2023" else 1.0, abs=1e-5)
    assert config.traffic_light_violation.WhichOneof("estimator") == "bernoulli"


def test_years_differ_as_published():
    c23, c24, c25 = (config_lib.load_config(y) for y in ("2023", "2024", "2025"))
    assert c23.linear_speed.histogram.max_val == 35.0  # 2023 bins
    assert c24.linear_speed.histogram.max_val == 25.0
    assert c24.traffic_light_violation.metametric_weight == 0.0
    assert c25.traffic_light_violation.metametric_weight == pytest.approx(0.05)
    assert c23.traffic_light_violation.metametric_weight == 0.0  # added, see load_config
    assert "challenge_2025_sim_agents_config" in str(config_lib.config_path("2025"))
    assert os.path.isfile(config_lib.config_path("2023"))


def test_unknown_year():
    with pytest.raises(ValueError, match="2022"):
        config_lib.load_config("2022")


def test_fast_backend_rejects_scenario_gen_config_clearly():
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    from waymo_open_dataset.protos import sim_agents_metrics_pb2  # pylint: disable=import-outside-toplevel

    from motion_sim.metrics import fast_likelihoods  # pylint: disable=import-outside-toplevel

    feature = text_format.Parse(
        "histogram { min_val: 0 max_val: 1 num_bins: 4 } aggregate_objects: true",
        sim_agents_metrics_pb2.SimAgentMetricsConfig.FeatureConfig(),
    )
    with pytest.raises(ValueError, match="use --backend=official"):
        fast_likelihoods.estimator_of(feature, "linear_speed")
