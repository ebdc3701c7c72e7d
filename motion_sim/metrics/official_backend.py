"""The `official` backend: waymo-open-dataset's own metric code, parallel over scenarios.

Workers: `worker_pool` (spawned processes fed serialized protos, results in input order).
"""

from __future__ import annotations

import collections
from typing import Iterable, Iterator

from waymo_open_dataset.protos import (
    scenario_pb2,
    sim_agents_metrics_pb2,
    sim_agents_submission_pb2,
)

from motion_sim.metrics import worker_pool

_WORKER_CONFIG = None


def _init_worker(config_bytes: bytes) -> None:
    global _WORKER_CONFIG
    worker_pool.init_tf_worker()
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
    """Scores validated (source, scenario, rollouts) triples with the official code in
    `num_workers` processes.

    Attributes:
      stats: empty (the official code reports no timing parts); kept so every backend has one.
    """

    def __init__(self, config: sim_agents_metrics_pb2.SimAgentMetricsConfig, num_workers: int = 1):
        self.config = config
        self.num_workers = max(1, int(num_workers))
        self.stats = collections.Counter()

    def map(
        self,
        triples: Iterable[
            tuple[str, scenario_pb2.Scenario, sim_agents_submission_pb2.ScenarioRollouts]
        ],
    ) -> Iterator[sim_agents_metrics_pb2.SimAgentMetrics]:
        """Yields one `SimAgentMetrics` per triple, in input order."""
        if self.num_workers == 1:
            for _, scenario, rollouts in triples:
                yield official_scenario_metrics(self.config, scenario, rollouts)
            return
        jobs = ((s.SerializeToString(), r.SerializeToString()) for _, s, r in triples)
        for result in worker_pool.ordered_map(
            _work, jobs, self.num_workers, _init_worker, (self.config.SerializeToString(),)
        ):
            yield sim_agents_metrics_pb2.SimAgentMetrics.FromString(result)
