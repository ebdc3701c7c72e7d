"""`metrics.worker_pool.ordered_map`: spawned workers, results in input order."""

import os
import time

from motion_sim.metrics import worker_pool

_OFFSET = None


def _init(offset: int) -> None:
    global _OFFSET
    _OFFSET = offset


def _slow_first(job: int) -> tuple[int, int]:
    # Early jobs finish last, so a pool that yielded in completion order would fail.
    time.sleep(0.2 if job < 2 else 0.0)
    return job + _OFFSET, os.getpid()


def test_ordered_map_keeps_input_order_in_worker_processes():
    results = list(worker_pool.ordered_map(_slow_first, iter(range(7)), 2, _init, (100,)))
    assert [value for value, _ in results] == list(range(100, 107))
    assert os.getpid() not in {pid for _, pid in results}  # computed in the workers
