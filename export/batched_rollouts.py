"""Rollouts of many scenes by a sim-agent SavedModel: several scenes per call, one call per
replica of a `tf.distribute` strategy at a time.

The submission generator and `evaluate --saved_model` stream scenes through `BatchedRollouts`:
consecutive scenes are cut into *units* of at most `batch_size` scenes (a unit never crosses a
`unit_key` boundary -- the submission uses the shard index, so a shard's bytes depend only on
the shard, whichever task or process writes it), each unit is padded to exactly `batch_size`
scenes by repeating its last scene (padding outputs are dropped; one input shape for the whole
run), and up to `num_replicas` units run at once, one per replica, through `strategy.run` on
the model loaded under `strategy.scope()`. On one device (CPU, one GPU) that is a plain call.

Seeds: a unit samples with `scenario_seed(seed, <first scenario id of the unit>)`; inside the
model, row b uses fold_in(that seed, b). With batch_size = 1 this is exactly the per-scenario
seed of `saved_model_rollouts.generate_scenario_rollouts`, so a batch-1 run reproduces it; a
larger batch size gives other (equally valid) samples and is part of the submission plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from export import loader, saved_model_rollouts, scenario_rollouts, scene_input
from motion_sim.learner import strategy as strategy_lib


class SceneItem(NamedTuple):
    """One scene to roll out.

    Attributes:
      source: "file:record" (named in errors).
      scenario: the `scenario_pb2.Scenario` (official sim-agent set, fallback states).
      inputs: unbatched scene inputs (`scene_input.scene_from_scenario`).
      key: the unit boundary key (e.g. shard index): units never mix keys.
    """

    source: str
    scenario: object
    inputs: dict
    key: int = 0


class BatchedRollouts:
    """A loaded sim-agent SavedModel run `batch_size` scenes per call on every replica.

    Args:
      saved_model_dir: the SavedModel.
      batch_size: scenes per model call per replica (>= 1).
      strategy: from `motion_sim.learner.strategy.get_strategy` (default: every local GPU
        with MirroredStrategy, else the default strategy; never multi-worker).

    Attributes:
      agent: the `LoadedSimAgent` (its variables created under the strategy's scope).
      num_replicas: replicas that each run one unit per step.
      calls: model calls made (one per step; each covers up to num_replicas units).
    """

    def __init__(
        self,
        saved_model_dir: str,
        batch_size: int = 1,
        strategy: tf.distribute.Strategy | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        # Never the multi-worker strategy: the tasks of a split job are independent processes
        # (TF_CONFIG only tells them their index), and a collective would wait for the others.
        self.strategy = strategy or strategy_lib.get_strategy(multi_worker=False)
        with self.strategy.scope():
            self.agent = loader.load_sim_agent(saved_model_dir)
        self.num_replicas = int(self.strategy.num_replicas_in_sync)
        self.calls = 0

    @property
    def num_rollouts(self) -> int:
        return self.agent.num_rollouts

    def _feed(self, unit: list[SceneItem], seed: int) -> dict:
        padded = unit + [unit[-1]] * (self.batch_size - len(unit))
        inputs = scene_input.stack_scenes([item.inputs for item in padded])
        unit_seed = saved_model_rollouts.scenario_seed(seed, unit[0].scenario.scenario_id)
        return self.agent.feed(inputs, unit_seed)

    def run_units(self, units: list[list[SceneItem]], seed: int) -> list[dict[str, np.ndarray]]:
        """Outputs (numpy, padding rows dropped) of up to `num_replicas` units, in order."""
        if not 0 < len(units) <= self.num_replicas:
            raise ValueError(f"{len(units)} units for {self.num_replicas} replicas")
        feeds = [self._feed(u, seed) for u in units]
        feeds += [feeds[-1]] * (self.num_replicas - len(feeds))  # idle replicas redo the last
        self.calls += 1
        if self.num_replicas == 1:
            results = [self.agent.call(feeds[0])]
        else:
            per_replica = self.strategy.experimental_distribute_values_from_function(
                lambda ctx: feeds[ctx.replica_id_in_sync_group]
            )
            out = self.strategy.run(self.agent.call_tensors, args=(per_replica,))
            results = [
                {k: v.numpy() for k, v in r.items()}
                for r in self.strategy.experimental_local_results(out)
            ]
        return [{k: v[: len(u)] for k, v in r.items()} for r, u in zip(results, units)]

    def rollouts(
        self,
        items: Iterable[SceneItem],
        seed: int,
    ) -> Iterator[tuple[SceneItem, object]]:
        """(item, (ScenarioRollouts, RolloutStats) or the ValueError that rejected it), in order.

        Raises:
          RuntimeError: the model failed (names the unit's first scene): not a data problem,
            every later call would fail too.
        """
        pending: list[list[SceneItem]] = []
        for unit in cut_units(items, self.batch_size):
            pending.append(unit)
            if len(pending) == self.num_replicas:
                yield from self._step(pending, seed)
                pending = []
        if pending:
            yield from self._step(pending, seed)

    def _step(self, units: list[list[SceneItem]], seed: int):
        try:
            outputs = self.run_units(units, seed)
        except tf.errors.OpError as e:
            others = sum(len(u) for u in units) - 1
            more = f" (and {others} more scenes of its batch)" if others else ""
            raise RuntimeError(
                f"{units[0][0].source}{more}: the sim agent failed on this "
                f"scenario: {type(e).__name__}: {e.message}"
            ) from e
        for unit, out in zip(units, outputs):
            for b, item in enumerate(unit):
                try:
                    result = scenario_rollouts.to_scenario_rollouts(
                        item.scenario,
                        out["trajectories"][b],
                        out["object_ids"][b],
                        out["agent_mask"][b],
                        item.source,
                    )
                except ValueError as e:  # invalid rollouts (a ScenarioError is one too)
                    result = e
                yield item, result


def cut_units(items: Iterable[SceneItem], batch_size: int) -> Iterator[list[SceneItem]]:
    """Consecutive items in units of at most `batch_size`, a new unit at every key change."""
    unit: list[SceneItem] = []
    for item in items:
        if unit and (item.key != unit[0].key or len(unit) == batch_size):
            yield unit
            unit = []
        unit.append(item)
    if unit:
        yield unit
