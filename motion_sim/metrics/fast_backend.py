"""The `fast` backend over many scenarios: `FastMetrics` in this process or in workers.

Workers are *spawned* processes (TF is not fork-safe) that each keep one `FastMetrics`, so each
compiles a `ShapeBucket` at most once; scenarios stream through a bounded window of pending
jobs (memory stays flat over a 44k-scenario validation set) and come back in input order.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
from typing import Iterable, Iterator

from waymo_open_dataset.protos import (
    scenario_pb2,
    sim_agents_metrics_pb2,
    sim_agents_submission_pb2,
)

_WORKER = None


def _init_worker(config_bytes: bytes) -> None:
    global _WORKER
    import os  # pylint: disable=import-outside-toplevel

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    # One op thread per worker: the workers themselves are the parallelism.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
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


def _work(args: tuple[bytes, bytes, str]) -> tuple[bytes, dict]:
    scenario = scenario_pb2.Scenario.FromString(args[0])
    rollouts = sim_agents_submission_pb2.ScenarioRollouts.FromString(args[1])
    before = _counters(_WORKER)
    metrics = _WORKER.metrics_from_protos(scenario, rollouts, args[2])
    after = _counters(_WORKER)
    return metrics.SerializeToString(), {k: after[k] - before[k] for k in after}


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

            fast = fast_metrics.FastMetrics(self.config)
            for source, scenario, rollouts in triples:
                before = _counters(fast)
                metrics = fast.metrics_from_protos(scenario, rollouts, source)
                self.stats.update({k: v - before[k] for k, v in _counters(fast).items()})
                yield metrics
            return
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            self.num_workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.config.SerializeToString(),),
        ) as pool:
            pending = collections.deque()
            for source, scenario, rollouts in triples:
                pending.append(
                    pool.submit(
                        _work, (scenario.SerializeToString(), rollouts.SerializeToString(), source)
                    )
                )
                if len(pending) >= 2 * self.num_workers:
                    yield self._collect(pending.popleft())
            while pending:
                yield self._collect(pending.popleft())

    def _collect(self, future) -> sim_agents_metrics_pb2.SimAgentMetrics:
        result, counters = future.result()
        self.stats.update(counters)
        return sim_agents_metrics_pb2.SimAgentMetrics.FromString(result)
