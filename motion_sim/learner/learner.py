"""The learner: one optimisation loop for BC pre-training and REINFORCE fine-tuning.

It owns the strategy, the distributed input, the train loop (`steps_per_loop` steps per
`tf.function` call), the non-finite guard, checkpoints, summaries and periodic work (triggers);
the maths lives in the loss classes (`motion_sim/losses/`), which return named parts.

One step, per replica:
  [RL only] sample closed-loop rollouts of the current policy (no gradient)
  loss = loss_fn(model, scene[, rollouts])     # replica share of the global-batch mean
  grads = all_reduce_sum(d loss / d weights)     # = gradient of the global mean
  ok = loss and gradient norm finite (identical on every replica after the all-reduce)
then, outside the replicas, `tf.cond(ok, apply, skip)`: a non-finite step changes no weight and
no optimizer slot (it is counted; `max_consecutive_nonfinite` in a row aborts the run).
The cond sits in cross-replica context because an optimizer's cross-replica merge cannot be
called inside control flow in a replica function.
"""

from __future__ import annotations

import os
from typing import Callable

import tensorflow as tf
from absl import logging

from motion_sim.data import datatypes
from motion_sim.learner import checkpointing, triggers
from motion_sim.rl import returns as returns_lib


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


class Learner:
    """Args:
    root_dir: run directory (checkpoints/, train/ summaries).
    strategy: from `strategy.get_strategy`.
    model: the policy, created inside `strategy.scope()` with its weights already built
      (`SimAgentModel` builds them in its constructor).
    optimizer: created inside `strategy.scope()`.
    loss_fn: `BCLoss` or `ReinforceLoss`; must have `metric_names`.
    dataset_fn: `input_context -> tf.data.Dataset` of *per-replica* batches.
    rollout_fn: RL only: `(scene, seed [2] int32) -> rollout` sampled from the current model.
    max_steps: stop at this global step.
    steps_per_loop: steps per `tf.function` call (host round trips are expensive on TPU).
    checkpoint_interval / summary_interval / log_interval: in steps.
    grad_clip_norm: clip the global gradient norm (None: no clipping).
    max_consecutive_nonfinite: abort after this many non-finite steps in a row.
    seed: base seed of the rollout sampling (stateless: resume reproduces the same samples).
    init_checkpoint: warm start (model weights only) when the run has no checkpoint yet.
    extra_triggers: more `IntervalTrigger`s (eval, export).
    jit_compile: XLA-compile each replica's loss and gradient.
    """

    def __init__(
        self,
        root_dir: str,
        strategy: tf.distribute.Strategy,
        model,
        optimizer,
        loss_fn,
        dataset_fn: Callable,
        *,
        rollout_fn: Callable | None = None,
        max_steps: int,
        steps_per_loop: int = 10,
        checkpoint_interval: int = 1000,
        summary_interval: int = 100,
        log_interval: int = 100,
        grad_clip_norm: float | None = 1.0,
        max_consecutive_nonfinite: int = 10,
        seed: int = 0,
        init_checkpoint: str | None = None,
        extra_triggers=(),
        is_chief: bool = True,
        max_to_keep: int = 3,
        jit_compile: bool = False,
    ):
        self.root_dir = root_dir
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.rollout_fn = rollout_fn
        self.max_steps = int(max_steps)
        self.steps_per_loop = int(steps_per_loop)
        self.grad_clip_norm = grad_clip_norm
        self.max_consecutive_nonfinite = int(max_consecutive_nonfinite)
        self.seed = int(seed)
        self.metric_names = tuple(loss_fn.metric_names)
        if self.steps_per_loop < 1:
            raise ValueError(f"steps_per_loop must be >= 1, got {steps_per_loop}")

        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.nonfinite_total = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.nonfinite_run = tf.Variable(0, dtype=tf.int64, trainable=False)
        # TF 2.13 cannot checkpoint a multi-replica DistributedIterator, so with several replicas
        # (Mirrored / MultiWorkerMirrored) this worker reads its input pipeline through a plain,
        # checkpointable tf.data iterator and hands consecutive batches to its local replicas
        # round-robin, exactly as the strategy's own iterator would. TPU keeps the strategy's
        # iterator (infeed), whose position is not checkpointed.
        self._local_replicas = 0  # 0: the strategy's own iterator
        made = []  # (input context, dataset) of this worker's input pipeline

        def capturing_dataset_fn(ctx):
            made.append((ctx, dataset_fn(ctx)))
            return made[-1][1]

        self.dataset = strategy.distribute_datasets_from_function(capturing_dataset_fn)
        host_iterator = (
            strategy.num_replicas_in_sync > 1
            and "TPU" not in type(strategy).__name__
            and len(made) == 1
        )
        if host_iterator:
            self._local_replicas = len(strategy.extended.worker_devices)
            ctx, dataset = made[0]
            with tf.device("/cpu:0"):
                self.iterator = iter(dataset)
            num_workers, worker_id = ctx.num_input_pipelines, ctx.input_pipeline_id
        else:
            self.iterator = iter(self.dataset)
            num_workers, worker_id = 1, 0
        with strategy.scope():
            optimizer.build(model.trainable_variables)

        state = dict(
            model=model,
            optimizer=optimizer,
            step=self.step,
            nonfinite_total=self.nonfinite_total,
            nonfinite_run=self.nonfinite_run,
        )
        worker_data = None
        if not isinstance(self.iterator, tf.__internal__.tracking.Trackable):
            logging.warning(
                "%s: data iterator position is not checkpointed under %s",
                root_dir,
                type(strategy).__name__,
            )
        elif num_workers > 1:
            # Each worker reads its own shard, so each keeps its own position (the shared
            # checkpoint holds only what all workers agree on).
            worker_data = (worker_id, self.iterator)
        else:
            state["iterator"] = self.iterator  # restart resumes the exact data position
        self.checkpointer = checkpointing.Checkpointer(
            os.path.join(root_dir, "checkpoints"),
            strategy,
            max_to_keep=max_to_keep,
            worker_data=worker_data,
            **state,
        )
        self.restored_from = self.checkpointer.restore_or_initialize(
            init_checkpoint, init_objects={"model": model}
        )

        self.is_chief = is_chief
        summary_dir = os.path.join(root_dir, "train")
        self.writer = (
            tf.summary.create_file_writer(summary_dir)
            if is_chief
            else tf.summary.create_noop_writer()
        )
        start = int(self.step.numpy())
        self._metrics_latest: dict = {}
        self.checkpoint_trigger = triggers.IntervalTrigger(
            checkpoint_interval, lambda s: self.checkpointer.save(s), start=start
        )
        self.summary_trigger = triggers.IntervalTrigger(
            summary_interval, self._write_summaries, start=start
        )
        self.rate_logger = triggers.StepRateLogger(self.max_steps, log_interval, self.writer)
        self.extra_triggers = list(extra_triggers)
        for t in self.extra_triggers:
            t.reset(start)
        self._train_loop = tf.function(self._loop)
        # XLA fuses the many elementwise ops around the attention matmuls (CPU/GPU/TPU alike).
        # Only the local loss + gradient is compiled: the all-reduces stay outside it.
        self._loss_and_grads = (
            tf.function(self._loss_and_grads_impl, jit_compile=True)
            if jit_compile
            else self._loss_and_grads_impl
        )

    # ------------------------------------------------------------------ maths
    def _replica_compute(self, scene, step):
        ctx = tf.distribute.get_replica_context()
        if self.rollout_fn is not None:
            # Distinct, reproducible samples per (step, replica): stateless seeds.
            replica = tf.cast(ctx.replica_id_in_sync_group, tf.int64)
            seed = tf.cast(
                tf.stack([tf.cast(self.seed, tf.int64), step * ctx.num_replicas_in_sync + replica]),
                tf.int32,
            )
            rollout = self.rollout_fn(scene, seed)
        # Strings (scenario_id) are no loss input, and XLA cannot take them.
        tensors = {k: v for k, v in datatypes.scene_fields(scene).items() if v.dtype != tf.string}
        out, grads = self._loss_and_grads(tensors, rollout if self.rollout_fn is not None else None)
        # Each replica's loss is its share of the global mean, so the SUM is the global gradient.
        grads = returns_lib.all_reduce_sum(grads) if ctx.num_replicas_in_sync > 1 else grads
        (global_loss,) = returns_lib.all_reduce_sum([out.loss])
        grad_norm = tf.linalg.global_norm(grads)
        ok = tf.math.is_finite(global_loss) & tf.math.is_finite(grad_norm)
        if self.grad_clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.grad_clip_norm, use_norm=grad_norm)
        metrics = dict(out.metrics)
        metrics["train/grad_norm"] = grad_norm / float(ctx.num_replicas_in_sync)
        return grads, ok, metrics

    def _loss_and_grads_impl(self, scene, rollout):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            out = (
                self.loss_fn(self.model, scene, rollout)
                if rollout is not None
                else self.loss_fn(self.model, scene)
            )
        grads = tape.gradient(out.loss, variables)
        grads = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(grads, variables)
        ]
        return out, grads

    def _apply(self, grads):
        self.optimizer.apply_gradients(
            zip(grads, self.model.trainable_variables), skip_gradients_aggregation=True
        )

    def _loop(self, iterator, num_steps):
        names = self.metric_names + ("train/grad_norm",)
        sums = {k: tf.constant(0.0) for k in names}
        applied = tf.constant(0.0)
        for _ in tf.range(num_steps):
            scene = self._next_batch(iterator)
            grads, ok, metrics = self.strategy.run(self._replica_compute, args=(scene, self.step))
            ok0 = self.strategy.experimental_local_results(ok)[0]
            # tf.cond calls the branch at once; the default argument only satisfies the linter.
            done = tf.cond(ok0, lambda g=grads: self._apply_all(g), lambda: tf.constant(0.0))
            reduced = {
                k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, metrics[k], axis=None)
                for k in names
            }
            # Skipped steps' metrics are NaN and must not poison the loop's averages.
            sums = {k: sums[k] + tf.where(ok0, reduced[k], 0.0) for k in names}
            applied += done
            self.nonfinite_total.assign_add(tf.where(ok0, tf.constant(0, tf.int64), 1))
            self.nonfinite_run.assign(
                tf.where(ok0, tf.zeros_like(self.nonfinite_run), self.nonfinite_run + 1)
            )
            self.step.assign_add(1)
        means = {k: v / tf.maximum(applied, 1.0) for k, v in sums.items()}
        return means, applied

    def _next_batch(self, iterator):
        if not self._local_replicas:
            return next(iterator)
        n = self._local_replicas
        batches = [next(iterator) for _ in range(n)]
        # Global replica ids of one worker are a contiguous block, so `% n` is the local index.
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: batches[ctx.replica_id_in_sync_group % n]
        )

    def _apply_all(self, grads):
        self.strategy.run(self._apply, args=(grads,))
        return tf.constant(1.0)

    # ------------------------------------------------------------- summaries
    def learning_rate(self) -> float:
        lr = self.optimizer.learning_rate
        if isinstance(lr, tf.keras.optimizers.schedules.LearningRateSchedule):
            return float(lr(self.optimizer.iterations))
        return float(tf.convert_to_tensor(lr))

    def _write_summaries(self, step: int):
        with self.writer.as_default(step=step):
            for k, v in self._metrics_latest.items():
                tf.summary.scalar(k, v)
            tf.summary.scalar("train/learning_rate", self.learning_rate())
            tf.summary.scalar("train/nonfinite_steps_total", int(self.nonfinite_total.numpy()))
        self.writer.flush()

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        """Trains until max_steps (or SIGTERM / preemption); returns the last loop's metrics."""
        step = int(self.step.numpy())
        self.rate_logger.reset(step)
        if step >= self.max_steps:
            logging.info("Already at step %d >= max_steps %d", step, self.max_steps)
        while step < self.max_steps:
            n = min(self.steps_per_loop, self.max_steps - step)
            means, applied = self._train_loop(self.iterator, tf.constant(n, tf.int64))
            step = int(self.step.numpy())
            if float(applied) > 0:
                self._metrics_latest = {k: float(v) for k, v in means.items()}
            run = int(self.nonfinite_run.numpy())
            if run >= self.max_consecutive_nonfinite:
                raise NonFiniteLossError(
                    f"{run} consecutive steps with a non-finite loss or gradient (up to step {step}); "
                    f"weights were not updated on those steps. Last good checkpoint: "
                    f"{self.checkpointer.manager.latest_checkpoint}. Lower the learning rate or "
                    f"check the input data."
                )
            if run:
                logging.warning(
                    "step %d: %d non-finite step(s) skipped in a row (%d total)",
                    step,
                    run,
                    int(self.nonfinite_total.numpy()),
                )
            self.summary_trigger(step)
            self.rate_logger(step, self._metrics_latest)
            self.checkpoint_trigger(step)
            for t in self.extra_triggers:
                t(step)
            self.checkpointer.save_if_preempted()
            if self.checkpointer.stop_requested:
                self.checkpointer.save(step)
                logging.warning("Stopped by SIGTERM at step %d after checkpointing", step)
                return self._metrics_latest
        self.summary_trigger(step, force=True)
        self.rate_logger(step, self._metrics_latest, force=True)
        latest = self.checkpointer.manager.latest_checkpoint
        if latest is None or not latest.endswith(f"-{step}"):  # the final state, exactly once
            self.checkpointer.save(step)
        for t in self.extra_triggers:
            t(step, force=True)
        self.writer.flush()
        return self._metrics_latest
