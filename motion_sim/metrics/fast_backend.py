"""The `fast` backend over many scenarios: `FastMetrics` in this process or in workers.

Workers (`worker_pool`) each keep one `FastMetrics`, so each compiles a `ShapeBucket` at most
once; scenarios stream through a bounded window of pending jobs and come back in input order.
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

_WORKER = None


def _init_worker(config_bytes: bytes) -> None:
    global _WORKER
    worker_pool.init_tf_worker()
    from motion_sim.metrics import fast_metrics  # pylint: disable=import-outside-toplevel

    _WORKER = fast_metrics.FastMetrics(
        sim_agents_metrics_pb2.SimAgentMetricsConfig.FromString(config_bytes)
    )


def _counters(fast) -> dict:
    return dict(
        fast.seconds,
        compilations=fast.compilations,
        fallbacks=fast.fallbacks,
        fallback_steps=fast.fallback_steps,
    )


def _score(fast, scenario, rollouts, source: str) -> tuple:
    """(SimAgentMetrics, the counters this call added) -- the same in this process or a worker."""
    before = _counters(fast)
    metrics = fast.metrics_from_protos(scenario, rollouts, source)
    after = _counters(fast)
    return metrics, {k: after[k] - before[k] for k in after}


def _work(args: tuple[bytes, bytes, str]) -> tuple[bytes, dict]:
    scenario = scenario_pb2.Scenario.FromString(args[0])
    rollouts = sim_agents_submission_pb2.ScenarioRollouts.FromString(args[1])
    metrics, counters = _score(_WORKER, scenario, rollouts, args[2])
    return metrics.SerializeToString(), counters


class FastBackend:
    """Scores validated (source, scenario, rollouts) triples with `FastMetrics`.

    Attributes:
      stats: totals over every process: seconds `arrays` / `compile` / `features`,
        `compilations`, `fallbacks` (scenarios), `fallback_steps`.
    """

    def __init__(self, config: sim_agents_metrics_pb2.SimAgentMetricsConfig, num_workers: int = 1):
        self.config = config
        self.num_workers = max(1, int(num_workers))
        self.stats = collections.Counter(
            arrays=0.0, compile=0.0, features=0.0, compilations=0, fallbacks=0, fallback_steps=0
        )

    def map(
        self,
        triples: Iterable[
            tuple[str, scenario_pb2.Scenario, sim_agents_submission_pb2.ScenarioRollouts]
        ],
    ) -> Iterator[sim_agents_metrics_pb2.SimAgentMetrics]:
        """Yields one `SimAgentMetrics` per triple, in input order."""
        if self.num_workers == 1:
            from motion_sim.metrics import fast_metrics  # pylint: disable=import-outside-toplevel

            # In one process a report's methods come scene by scene: build each scene's arrays once.
            fast = fast_metrics.FastMetrics(self.config, reuse_scene_arrays=True)
            for source, scenario, rollouts in triples:
                metrics, counters = _score(fast, scenario, rollouts, source)
                self.stats.update(counters)
                yield metrics
            return
        jobs = (
            (scenario.SerializeToString(), rollouts.SerializeToString(), source)
            for source, scenario, rollouts in triples
        )
        for result, counters in worker_pool.ordered_map(
            _work, jobs, self.num_workers, _init_worker, (self.config.SerializeToString(),)
        ):
            self.stats.update(counters)
            yield sim_agents_metrics_pb2.SimAgentMetrics.FromString(result)
