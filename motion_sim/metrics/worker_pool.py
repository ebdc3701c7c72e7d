"""Spawned worker processes for the metric backends, results in input order.

Workers are *spawned* (TensorFlow is not fork-safe) and receive serialized protos, so nothing
TF-related crosses the process boundary. Jobs stream through a bounded window of pending
futures, so memory stays flat over a 44k-scenario validation set.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os
from typing import Any, Callable, Iterable, Iterator


def init_tf_worker() -> None:
    """TensorFlow set up for one worker of many: quiet, one op thread (the workers themselves
    are the parallelism). Call first in a worker's initializer."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def ordered_map(
    work: Callable[[Any], Any],
    jobs: Iterable[Any],
    num_workers: int,
    initializer: Callable[..., None],
    initargs: tuple = (),
) -> Iterator[Any]:
    """Yields `work(job)` for every job, in input order, computed in `num_workers` spawned
    processes (each set up once by `initializer(*initargs)`); at most 2 jobs per worker wait."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        pending = collections.deque()
        for job in jobs:
            pending.append(pool.submit(work, job))
            if len(pending) >= 2 * num_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
