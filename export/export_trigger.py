"""Exports the current policy as a sim-agent SavedModel every N steps (tf-agents style trigger).

Each export goes to `<root_dir>/export/step_XXXXXXX` (7-digit step) through
`export.export_model.export_policy`: the same serving contract, `sim_agent.json` and atomic
write (temp dir + rename) as `python -m export.export_model`, so any exported step can be fed
straight to `export.wosac_submission` or `export.report`.

The weights are copied into a fresh model built outside the distribution strategy, so the
export neither touches the training variables nor depends on how the strategy placed them.
"""

from __future__ import annotations

import os

import tensorflow as tf
from absl import logging

import gin
from export import export_model
from motion_sim.learner.triggers import IntervalTrigger
from motion_sim.models.sim_agent_model import SimAgentModel

EXPORT_SUBDIR = "export"


def export_dir_for_step(root_dir: str, step: int) -> str:
    return os.path.join(root_dir, EXPORT_SUBDIR, f"step_{int(step):07d}")


class ExportTrigger(IntervalTrigger):
    """Every `interval` steps (and at the end of training), exports the policy.

    Args:
      interval: steps between exports (<= 0: only forced exports, i.e. the final one).
      root_dir: the run directory; exports go to `<root_dir>/export/step_XXXXXXX`.
      model: the training `SimAgentModel` (read only).
      tokenizer: the run's `ActionTokenizer`.
      num_rollouts, temperature, top_k, top_p: sampling settings of the exported agent.
      start: the step training starts from (a resumed run does not re-export at once).

    Attributes:
      exported: step -> SavedModel path of every export done by this trigger.
    """

    def __init__(
        self,
        interval: int,
        root_dir: str,
        model: tf.keras.Model,
        tokenizer,
        num_rollouts: int = 32,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        start: int = 0,
    ):
        super().__init__(interval, self._export, start=start)
        self.root_dir = root_dir
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = dict(
            num_rollouts=int(num_rollouts),
            temperature=float(temperature),
            top_k=int(top_k),
            top_p=float(top_p),
        )
        self.exported: dict[int, str] = {}

    def _export(self, step: int):
        if step in self.exported:  # forced at the end right after a periodic export
            return
        if tf.distribute.has_strategy():
            # Inside strategy.scope() the copy's variables would be distributed ones again.
            raise RuntimeError("ExportTrigger must be called outside strategy.scope()")
        copy = SimAgentModel.from_config(self.model.get_config())
        copy.set_weights(self.model.get_weights())
        path = export_model.export_policy(
            copy,
            self.tokenizer,
            export_dir_for_step(self.root_dir, step),
            root_dir=os.path.abspath(self.root_dir),
            step=int(step),
            checkpoint=None,
            **self.sampling,
        )
        self.exported[step] = path
        logging.info("Exported the policy at step %d to %s", step, path)


@gin.configurable(denylist=["root_dir", "model", "tokenizer", "start", "is_chief"])
def make_export_triggers(
    root_dir: str,
    model: tf.keras.Model,
    tokenizer,
    *,
    start: int = 0,
    is_chief: bool = True,
    interval: int = 0,
    num_rollouts: int = 32,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> list[ExportTrigger]:
    """The learner's export triggers from gin (`make_export_triggers.interval = 10000`).

    The training binary (motion_sim/train.py) builds them and hands them to the `Learner` as
    `extra_triggers`: the learner library knows triggers, not the export application.

    interval = 0 (default) exports nothing; only the chief exports (workers share root_dir).
    """
    if interval <= 0 or not is_chief:
        return []
    return [
        ExportTrigger(
            interval,
            root_dir,
            model,
            tokenizer,
            num_rollouts,
            temperature,
            top_k,
            top_p,
            start=start,
        )
    ]
