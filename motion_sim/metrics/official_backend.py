"""The `official` backend: waymo-open-dataset's own metric code, parallel over scenarios.

Each worker is a fresh *spawned* process that imports TensorFlow itself (TF is not fork-safe)
and receives serialized protos, so nothing TF-related crosses the process boundary.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Iterable, Iterator

from waymo_open_dataset.protos import (
    scenario_pb2,
    sim_agents_metrics_pb2,
    sim_agents_submission_pb2,
)

_WORKER_CONFIG = None


def _init_worker(config_bytes: bytes) -> None:
    global _WORKER_CONFIG
    import os  # pylint: disable=import-outside-toplevel

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    # One op thread per worker: the workers themselves are the parallelism.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _WORKER_CONFIG = sim_agents_metrics_pb2.SimAgentMetricsConfig.FromString(config_bytes)


def official_scenario_metrics(
    config: sim_agents_metrics_pb2.SimAgentMetricsConfig,
    scenario: scenario_pb2.Scenario,
    rollouts: sim_agents_submission_pb2.ScenarioRollouts,
) -> sim_agents_metrics_pb2.SimAgentMetrics:
    """`metrics.compute_scenario_metrics_for_bundle`, in this process."""
    from waymo_open_dataset.wdl_limited.sim_agents_metrics import metrics  # pylint: disable=import-outside-toplevel

    return metrics.compute_scenario_metrics_for_bundle(config, scenario, rollouts)


def official_metrics_by_config(
    configs: dict,
    scenario: scenario_pb2.Scenario,
    rollouts: sim_agents_submission_pb2.ScenarioRollouts,
) -> dict:
    """{key: SimAgentMetrics} for several configs (e.g. one per year) of ONE bundle, in this process.

    The official code's features (the minutes-long part) do not depend on the config, so they are
    computed once and each config only re-runs the likelihoods -- exactly
    `compute_scenario_metrics_for_bundle`'s two steps.
    """
    from waymo_open_dataset.utils.sim_agents import submission_specs  # pylint: disable=import-outside-toplevel
    from waymo_open_dataset.wdl_limited.sim_agents_metrics import (
        metric_features,  # pylint: disable=import-outside-toplevel
        metrics,  # pylint: disable=import-outside-toplevel
    )

    log_features, sim_features = metric_features.compute_scenario_rollouts_features(
        scenario, rollouts, submission_specs.ChallengeType.SIM_AGENTS
    )
    return {
        key: metrics.compute_scenario_metrics_for_features_bundle(
            config, scenario.scenario_id, log_features, sim_features
        )
        for key, config in configs.items()
    }


def _work(args: tuple[bytes, bytes]) -> bytes:
    scenario = scenario_pb2.Scenario.FromString(args[0])
    rollouts = sim_agents_submission_pb2.ScenarioRollouts.FromString(args[1])
    return official_scenario_metrics(_WORKER_CONFIG, scenario, rollouts).SerializeToString()


class OfficialBackend:
    """Scores (scenario, rollouts) pairs with the official code in `num_workers` processes."""

    def __init__(self, config: sim_agents_metrics_pb2.SimAgentMetricsConfig, num_workers: int = 1):
        self.config = config
        self.num_workers = max(1, int(num_workers))

    def map(
        self,
        pairs: Iterable[tuple[scenario_pb2.Scenario, sim_agents_submission_pb2.ScenarioRollouts]],
    ) -> Iterator[sim_agents_metrics_pb2.SimAgentMetrics]:
        """Yields one `SimAgentMetrics` per pair, in input order."""
        if self.num_workers == 1:
            for scenario, rollouts in pairs:
                yield official_scenario_metrics(self.config, scenario, rollouts)
            return
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            self.num_workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.config.SerializeToString(),),
        ) as pool:
            jobs = ((s.SerializeToString(), r.SerializeToString()) for s, r in pairs)
            for result in pool.map(_work, jobs):
                yield sim_agents_metrics_pb2.SimAgentMetrics.FromString(result)
