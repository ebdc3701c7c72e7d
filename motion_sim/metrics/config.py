"""WOSAC metric configs by challenge year (2023 | 2024 | 2025).

2023 ships inside this package (`configs/`); 2024 and 2025 are read from the installed
waymo-open-dataset wheel by *package path*: the wheel's own `metrics.load_metrics_config` opens a
cwd-relative path and only works when run from site-packages.
"""

from __future__ import annotations

import importlib.resources
import pathlib

from google.protobuf import text_format
from waymo_open_dataset.protos import sim_agents_metrics_pb2

_WHEEL_PACKAGE = "waymo_open_dataset.wdl_limited.sim_agents_metrics"
_CONFIG_FILES = {
    "2023": ("motion_sim.metrics.configs", "challenge_2023_config.textproto"),
    "2024": (_WHEEL_PACKAGE, "challenge_2024_config.textproto"),
    "2025": (_WHEEL_PACKAGE, "challenge_2025_sim_agents_config.textproto"),
}
CONFIG_YEARS = tuple(_CONFIG_FILES)


def config_path(year: str) -> pathlib.Path:
    """Returns the textproto file of `year`'s config."""
    if str(year) not in _CONFIG_FILES:
        raise ValueError(f"Unknown WOSAC config year {year!r}; choose one of {CONFIG_YEARS}.")
    package, name = _CONFIG_FILES[str(year)]
    return pathlib.Path(str(importlib.resources.files(package).joinpath(name)))


def load_config(year: str) -> sim_agents_metrics_pb2.SimAgentMetricsConfig:
    """Loads the `SimAgentMetricsConfig` of a challenge year.

    The 2023 file predates the traffic-light feature, so it has no `traffic_light_violation`
    entry and the current official `compute_scenario_metrics_for_features_bundle` would raise
    "invalid estimator" on it. We add the entry as a Bernoulli estimator with weight 0: the
    meta-metric is unchanged (the published 2023 weights, which add up to 0.99, are kept as is) and the violation rate is still
    reported. The 2023 scores are therefore the *current* feature code with 2023 bins/weights,
    not a replay of the 2023 evaluation code.
    """
    config = sim_agents_metrics_pb2.SimAgentMetricsConfig()
    text_format.Parse(config_path(year).read_text(), config)
    if not config.HasField("traffic_light_violation"):
        config.traffic_light_violation.bernoulli.SetInParent()
        config.traffic_light_violation.metametric_weight = 0.0
    return config
