"""Checkpoints of a run: model, optimizer, step, data iterator; preemption-safe saving.

Restart semantics: `restore_or_initialize` continues from the newest checkpoint in the run
directory with the same step, optimizer slots and tf.data position (the iterator is part of the
checkpoint; on multi-worker runs each worker keeps its own beside it); with none there it may warm-start the *model weights only* from an initial
checkpoint (RL fine-tuning from a pre-trained policy).

Preemption: on TPU and multi-worker runs `tf.distribute.experimental.PreemptionCheckpointHandler`
watches for the platform's termination notice (off GCP: SIGTERM to any worker), has every worker
save at the same step and exits with the platform's restart code (42 off GCP). Elsewhere SIGTERM
sets a flag that the learner checks after every loop; it saves and exits cleanly (code 0).
"""

from __future__ import annotations

import os
import signal

import tensorflow as tf
from absl import logging


class CheckpointError(RuntimeError):
    """A checkpoint to start from is missing or does not match the model."""


class Checkpointer:
    """Args:
    directory: where checkpoints go (`<root_dir>/checkpoints`).
    strategy: the run's strategy (decides whether the platform preemption handler applies).
    max_to_keep: checkpoints kept on disk.
    worker_data: `(worker_id, iterator)` on multi-worker runs, where every worker reads its own
      input shard: the iterator goes to a per-worker checkpoint `data_worker_<id>/ckpt-<step>`
      saved with every shared checkpoint and restored with the one of the same step.
    **trackables: what to save (model, optimizer, step, iterator, ...).
    """

    def __init__(
        self,
        directory: str,
        strategy: tf.distribute.Strategy,
        max_to_keep: int = 3,
        worker_data: tuple | None = None,
        **trackables,
    ):
        self.directory = directory
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=max_to_keep, step_counter=trackables.get("step")
        )
        self.read_manager = self.manager
        resolver = getattr(strategy, "cluster_resolver", None)
        if (
            isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and resolver is not None
            and resolver.task_id not in (None, 0)
        ):
            # Every worker must take part in a save; only the chief (worker 0) keeps its files in
            # the shared directory. The others write to a private scratch dir (kept at 1) and
            # restore from the chief's checkpoints (tests/learner/test_multi_worker.py).
            self.manager = tf.train.CheckpointManager(
                self.checkpoint,
                os.path.join(directory, f".worker_{resolver.task_id}"),
                max_to_keep=1,
                step_counter=trackables.get("step"),
            )
        self._data_manager = None
        if worker_data is not None:
            worker_id, iterator = worker_data
            self._data_manager = tf.train.CheckpointManager(
                tf.train.Checkpoint(iterator=iterator),
                os.path.join(directory, f"data_worker_{worker_id}"),
                max_to_keep=max_to_keep,
            )
        self._step = trackables.get("step")
        self._sigterm = False
        self._preemption = None
        if isinstance(
            strategy, (tf.distribute.MultiWorkerMirroredStrategy, tf.distribute.TPUStrategy)
        ):
            try:
                # The handler agrees on one step across workers; `save_fn` makes its save the
                # same as ours (numbered by step, with this worker's data position).
                config = tf.distribute.experimental.TerminationConfig(
                    save_fn=lambda: self.save(int(self._step.numpy()))
                )
                self._preemption = tf.distribute.experimental.PreemptionCheckpointHandler(
                    strategy.cluster_resolver, self.manager, termination_config=config
                )
            except Exception as e:  # noqa: BLE001 -- platforms without a notice service
                logging.warning("PreemptionCheckpointHandler unavailable (%s); SIGTERM only", e)
        if self._preemption is None:
            try:
                signal.signal(signal.SIGTERM, self._on_sigterm)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        # Else the handler owns SIGTERM: one worker's signal must stop *every* worker at the same
        # step (a local flag would leave the others waiting in a collective). After saving it
        # exits with the platform's restart code (42 off GCP); the same command resumes.

    def _on_sigterm(self, signum, frame):
        logging.warning("SIGTERM: will checkpoint and stop after the current loop")
        self._sigterm = True

    @property
    def stop_requested(self) -> bool:
        return self._sigterm

    def restore_or_initialize(
        self, init_checkpoint: str | None = None, init_objects: dict | None = None
    ) -> str | None:
        """Restores the latest checkpoint of the run; else warm-starts from `init_checkpoint`.

        Returns the path restored from (None for a fresh start).
        """
        latest = self.read_manager.latest_checkpoint
        if latest:
            restored = self._restore_newest_intact()
            self._restore_worker_data(restored)
            return restored
        if init_checkpoint:
            path = resolve_checkpoint(init_checkpoint)
            partial = tf.train.Checkpoint(**(init_objects or {}))
            status = partial.read(path)
            # The pre-training checkpoint also holds its optimizer, step and iterator, which a
            # fine-tuning run deliberately does not take over; every *model* weight must match.
            status.expect_partial()
            try:
                status.assert_existing_objects_matched()
            except AssertionError as e:
                raise CheckpointError(
                    f"initial checkpoint {path} does not match the model: {e}"
                ) from e
            logging.info("Initialised model weights from %s", path)
            return path
        return None

    def _restore_newest_intact(self) -> str:
        """Restores the newest checkpoint that reads back whole, newest first.

        A checkpoint truncated by a full disk or a crash mid-copy fails deep in TF (e.g.
        "IndexError: Read less bytes than requested"); the previous one is then restored and the
        fall-back is said, so a run never dies on -- or silently trains from -- a broken save.
        Every variable of the model is overwritten by the intact restore, so values a failed
        partial restore may have set do not survive.
        """
        candidates = list(reversed(self.read_manager.checkpoints))
        errors = []
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except AssertionError:
                raise  # a model / checkpoint mismatch is a configuration error, not corruption
            except Exception as e:  # noqa: BLE001 -- TF raises IndexError, DataLossError, ...
                reason = getattr(e, "message", None) or str(e)
                errors.append(
                    f"{path}: {type(e).__name__}: {reason.splitlines()[0] if reason else ''}"
                )
                logging.error(
                    "checkpoint %s is unreadable (%s: %s)",
                    path,
                    type(e).__name__,
                    reason.splitlines()[0] if reason else "",
                )
                continue
            if errors:
                logging.warning(
                    "Restored the previous intact checkpoint %s instead (the newer "
                    "one(s) are corrupt or truncated: %s)",
                    path,
                    "; ".join(errors),
                )
            else:
                logging.info("Resumed from %s", path)
            return path
        raise CheckpointError(
            f"every checkpoint in {self.read_manager.directory} is unreadable "
            f"({'; '.join(errors)}); move them away to start fresh"
        )

    def _restore_worker_data(self, latest: str):
        if self._data_manager is None:
            return
        path = os.path.join(self._data_manager.directory, os.path.basename(latest))
        if not tf.io.gfile.exists(path + ".index"):
            # E.g. the platform's preemption handler saved only the shared checkpoint.
            logging.warning(
                "no data position %s for %s: this worker re-opens its input stream", path, latest
            )
            return
        self._data_manager.checkpoint.restore(path).assert_existing_objects_matched()
        logging.info("Restored this worker's data position from %s", path)

    def save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        if self._data_manager is not None:
            self._data_manager.save(checkpoint_number=step)
        logging.info("Saved checkpoint %s", path)
        return path

    def save_if_preempted(self):
        """Preemption notice or SIGTERM (TPU / multi-worker): all workers save and exit here."""
        if self._preemption is not None:
            self._preemption.save_checkpoint_if_preempted()


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a prefix, a checkpoint directory or a run root directory."""
    if tf.io.gfile.isdir(path):
        for cand in (path, os.path.join(path, "checkpoints")):
            latest = tf.train.latest_checkpoint(cand)
            if latest:
                return latest
        raise CheckpointError(
            f"no checkpoint found in directory {path} (nor in {path}/checkpoints)"
        )
    if tf.io.gfile.exists(path + ".index"):
        return path
    raise CheckpointError(
        f"checkpoint {path} does not exist (expected {path}.index, or a directory "
        "holding checkpoints)"
    )
