"""The one way to score rollouts: `make_backend(kind, config)` -> a backend whose `map` turns
validated (source, Scenario, ScenarioRollouts) triples into `SimAgentMetrics`, in input order.

Used by `motion_sim.evaluate` and `export.report`. Both backends import TensorFlow (and the
official metric code) only when they score, so importing this module stays cheap.
"""

from __future__ import annotations

import collections
import enum
from typing import Iterable, Iterator, TypeVar

from waymo_open_dataset.protos import sim_agents_metrics_pb2

from motion_sim.metrics import fast_backend, official_backend

Tag = TypeVar("Tag")


class BackendKind(enum.StrEnum):
    """Metric implementation: `fast` (compiled XLA re-implementation, `fast_metrics`) or
    `official` (waymo-open-dataset's code); they agree within 1e-3 on every field."""

    FAST = "fast"
    OFFICIAL = "official"


def make_backend(
    kind: BackendKind | str,
    config: sim_agents_metrics_pb2.SimAgentMetricsConfig,
    num_workers: int = 1,
) -> fast_backend.FastBackend | official_backend.OfficialBackend:
    """The backend of `kind` for `config`, scoring in this process or `num_workers` workers."""
    try:
        kind = BackendKind(kind)
    except ValueError:
        raise ValueError(
            f"unknown backend {kind!r}; choose from {[k.value for k in BackendKind]}"
        ) from None
    if kind is BackendKind.FAST:
        return fast_backend.FastBackend(config, num_workers)
    return official_backend.OfficialBackend(config, num_workers)


def map_tagged(
    backend, items: Iterable[tuple[Tag, str, object, object]]
) -> Iterator[tuple[Tag, sim_agents_metrics_pb2.SimAgentMetrics]]:
    """(tag, source, Scenario, ScenarioRollouts) -> yields (tag, SimAgentMetrics), in order.

    The tag (e.g. the method a report row belongs to) rides along outside the backend: backends
    yield in input order, so a FIFO of the tags sent pairs each result with its own.
    """
    tags = collections.deque()

    def triples():
        for tag, source, scenario, rollouts in items:
            tags.append(tag)
            yield source, scenario, rollouts

    for metrics in backend.map(triples()):
        yield tags.popleft(), metrics
