"""Periodic work of the learner loop, as triggers (after tf-agents `train/triggers.py`).

A trigger is called with the global step after every loop of `steps_per_loop` steps; it decides
itself whether its interval has passed. `force=True` (end of training, preemption) runs it now.
"""

from __future__ import annotations

import time
from typing import Callable

import tensorflow as tf


class IntervalTrigger:
    """Runs `fn(step)` when at least `interval` steps passed since it last ran.

    Steps advance in chunks of steps_per_loop, so "passed" is tested with >=, not divisibility.
    """

    def __init__(self, interval: int, fn: Callable[[int], None], start: int = 0):
        self.interval = int(interval)
        self.fn = fn
        self._last = int(start)

    def reset(self, step: int):
        self._last = int(step)

    def __call__(self, step: int, force: bool = False):
        if self.interval <= 0 and not force:
            return
        if force or step - self._last >= self.interval:
            if step != self._last or force:
                self.fn(step)
            self._last = step


class StepRateLogger:
    """Console progress (step, steps/s, ETA, headline metrics) and `perf/steps_per_sec` summaries."""

    def __init__(self, max_steps: int, interval: int, summary_writer=None):
        self.max_steps = int(max_steps)
        self.interval = int(interval)
        self.writer = summary_writer
        self._t0 = None
        self._s0 = None
        self._last_log = None

    def reset(self, step: int):
        self._t0, self._s0, self._last_log = time.time(), int(step), int(step)

    def __call__(self, step: int, metrics: dict | None = None, force: bool = False):
        if self._t0 is None:
            self.reset(step)
            return
        if step == self._last_log or (not force and step - self._last_log < self.interval):
            return
        now = time.time()
        rate = (step - self._s0) / max(now - self._t0, 1e-9)
        eta = (self.max_steps - step) / rate if rate > 0 else float("inf")
        shown = " ".join(
            f"{k.split('/')[-1]}={v:.4g}"
            for k, v in sorted((metrics or {}).items())
            if k.endswith(("loss", "token_accuracy", "collision_rate", "ade", "reward"))
        )
        # One console line per interval: stdout only (absl's INFO log would print it again on
        # stderr). Scripts and tests read these lines from stdout.
        print(
            f"step {step}/{self.max_steps}  {rate:.2f} steps/s  ETA {_fmt_eta(eta)}  {shown}",
            flush=True,
        )
        if self.writer is not None:
            with self.writer.as_default(step=step):
                tf.summary.scalar("perf/steps_per_sec", rate)
        self._t0, self._s0, self._last_log = now, step, step


def _fmt_eta(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
