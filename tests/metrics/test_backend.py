"""`metrics.backend`: the backend factory and the tag pairing every scoring loop uses."""

import pytest
from waymo_open_dataset.protos import sim_agents_metrics_pb2

from motion_sim.metrics import backend as backend_lib
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import fast_backend, official_backend


def test_make_backend_by_kind_and_name():
    config = config_lib.load_config("2025")
    fast = backend_lib.make_backend("fast", config, num_workers=3)
    assert isinstance(fast, fast_backend.FastBackend) and fast.num_workers == 3
    official = backend_lib.make_backend(backend_lib.BackendKind.OFFICIAL, config)
    assert isinstance(official, official_backend.OfficialBackend) and official.num_workers == 1
    assert official.config is config and not official.stats
    with pytest.raises(ValueError, match=r"unknown backend 'exact'; choose from \['fast', 'off"):
        backend_lib.make_backend("exact", config)


class _SlowFirstBackend:
    """Yields in input order, like the real backends, after reading ahead two triples (as a
    worker window does), so tags must not be paired with the most recent triple."""

    def map(self, triples):
        pending = []
        for _, scenario, _ in triples:
            pending.append(scenario)
            if len(pending) == 2:
                yield sim_agents_metrics_pb2.SimAgentMetrics(scenario_id=pending.pop(0))
        for scenario in pending:
            yield sim_agents_metrics_pb2.SimAgentMetrics(scenario_id=scenario)


def test_map_tagged_pairs_each_result_with_its_own_tag():
    items = [(f"method{i % 2}", "src", f"scene{i}", None) for i in range(5)]
    got = [(tag, m.scenario_id) for tag, m in backend_lib.map_tagged(_SlowFirstBackend(), items)]
    assert got == [(f"method{i % 2}", f"scene{i}") for i in range(5)]
