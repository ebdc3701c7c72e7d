r"""Trains a sim-agent policy: BC pre-training or REINFORCE fine-tuning (paper Sec. 3-4).

    python -m motion_sim.train --root_dir=runs/pre10m --gin_file=gin/pretrain_10m.gin \
        --gin_bindings="train.train_data='/data/scenes/train/*.tfrecord.gz'"
    python -m motion_sim.train --root_dir=runs/ft10m --gin_file=gin/finetune_10m.gin \
        --gin_bindings="PRETRAINED_CHECKPOINT='runs/pre10m'" --gin_bindings="train.train_data=..."

Flags choose the run (where, which hardware, seed); gin chooses every hyperparameter. Running the
same command again continues from the run's latest checkpoint. The operative gin config is written
to `<root_dir>/operative_config.gin` and to TensorBoard (`<root_dir>/train`).
"""

from __future__ import annotations

import enum
import os
import sys

import tensorflow as tf
from absl import app, flags, logging

import gin
from export import export_trigger
from motion_sim import sampler as sampler_lib
from motion_sim import tokenizer as tokenizer_lib
from motion_sim.data import pipeline, run_lock
from motion_sim.learner import checkpointing, image_trigger, optimization
from motion_sim.learner import strategy as strategy_lib
from motion_sim.learner.gin_config import (
    ConfigError,
    define_gin_flags,
    parse_gin,
    write_operative_config,
)
from motion_sim.learner.learner import Learner, NonFiniteLossError
from motion_sim.losses.bc_loss import BCLoss
from motion_sim.losses.reinforce_loss import ReinforceLoss
from motion_sim.models.sim_agent_model import SimAgentModel
from motion_sim.rl import rewards  # noqa: F401 -- registers RewardFunction with gin


class Mode(enum.StrEnum):
    """`train.mode`: what the run optimises."""

    BC = "bc"  # behaviour-cloning pre-training (paper Eq. 1)
    RL = "rl"  # REINFORCE fine-tuning (paper Alg. 1)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_string(
        "root_dir", None, "Run directory: checkpoints, summaries, operative config."
    )
    define_gin_flags()
    flags.DEFINE_string("tpu", None, "TPU name or address ('local' on a TPU VM): TPUStrategy.")
    flags.DEFINE_integer("seed", 0, "Seed of weight init, data order and rollout sampling.")
    flags.DEFINE_bool(
        "deterministic",
        False,
        "Bit-reproducible run (same seed, same machine -> same weights): one "
        "inter-op thread and TF op determinism. Costs little for most models.",
    )


@gin.configurable(denylist=["root_dir", "tpu", "seed"])
def train(
    root_dir: str,
    *,
    mode: str | None = None,
    train_data: str | None = None,
    batch_size: int = 128,
    max_steps: int | None = None,
    steps_per_loop: int = 10,
    checkpoint_interval: int = 5000,
    summary_interval: int = 100,
    log_interval: int = 100,
    grad_clip_norm: float | None = 1.0,
    max_consecutive_nonfinite: int = 10,
    init_checkpoint: str | None = None,
    cache_data: bool = False,
    shuffle_data: bool = True,
    tpu: str | None = None,
    seed: int = 0,
    use_gpu: bool = True,
    jit_compile: bool = False,
    rl_from_scratch: bool = False,
) -> dict:
    """Builds strategy, data, model, loss and learner from gin, then trains.

    Args:
      root_dir: run directory.
      mode: a `Mode`: "bc" (pre-training, paper Eq. 1) or "rl" (REINFORCE fine-tuning, Alg. 1).
        mode, train_data and max_steps are required (the run gin files set them).
      train_data: glob(s) of preprocessed scene shards (`motion_sim.data.preprocess`).
      batch_size: GLOBAL batch of scenarios (split over replicas).
      max_steps: total optimizer steps of this run.
      init_checkpoint: RL: the pre-trained policy (checkpoint prefix, checkpoint dir or run dir);
        used when root_dir has no checkpoint yet. Required for "rl".
      cache_data: keep parsed scenes in memory (small data sets).
      jit_compile: XLA-compile each replica's loss + gradient (faster on CPU, GPU and TPU).
      rl_from_scratch: RL from a randomly initialised policy (the paper's "RL only" row); must
        be asked for explicitly, and excludes init_checkpoint, so a forgotten
        PRETRAINED_CHECKPOINT is still an error rather than a silent from-scratch run.
    Returns: the last metrics.
    Raises: ConfigError (and the typed errors `main` reports) before anything is written.
    """
    missing = [
        name
        for name, value in (("mode", mode), ("train_data", train_data), ("max_steps", max_steps))
        if value is None
    ]
    if missing:
        raise ConfigError(
            f"{', '.join('train.' + m for m in missing)} not set: include a run "
            "gin file (gin/pretrain_*.gin, gin/finetune_*.gin, gin/demo_*.gin)"
        )
    try:
        mode = Mode(mode)
    except ValueError:
        raise ConfigError(
            f"train.mode must be one of {[m.value for m in Mode]}, got {mode!r}"
        ) from None
    _check_types(
        batch_size=batch_size,
        max_steps=max_steps,
        steps_per_loop=steps_per_loop,
        checkpoint_interval=checkpoint_interval,
        summary_interval=summary_interval,
        log_interval=log_interval,
        max_consecutive_nonfinite=max_consecutive_nonfinite,
    )
    if grad_clip_norm is not None and (
        isinstance(grad_clip_norm, bool) or not isinstance(grad_clip_norm, (int, float))
    ):
        raise ConfigError(f"train.grad_clip_norm={grad_clip_norm!r}: expected a number or None")
    if rl_from_scratch and (mode is not Mode.RL or init_checkpoint):
        raise ConfigError(
            "train.rl_from_scratch=True is for mode 'rl' without a pre-trained "
            f"policy (got mode={mode.value!r}, init_checkpoint={init_checkpoint!r}); "
            "bind PRETRAINED_CHECKPOINT=None"
        )
    if mode is Mode.RL and not init_checkpoint and not rl_from_scratch:
        raise ConfigError(
            "RL fine-tuning needs the pre-trained policy: set PRETRAINED_CHECKPOINT "
            "(a checkpoint prefix, a checkpoint directory or a pre-training run dir), or "
            "ask for RL from scratch with train.rl_from_scratch=True"
        )
    if init_checkpoint and not tf.train.latest_checkpoint(os.path.join(root_dir, "checkpoints")):
        init_checkpoint = checkpointing.resolve_checkpoint(init_checkpoint)  # fails clearly now
    files = [f for p in train_data.split(",") if p.strip() for f in tf.io.gfile.glob(p.strip())]
    if not files:
        raise ConfigError(
            f"train.train_data={train_data!r} matches no files (run "
            "`python -m motion_sim.data.preprocess` first)"
        )

    # The strategy comes first: MultiWorkerMirroredStrategy must exist before any TF op runs.
    strategy = strategy_lib.get_strategy(tpu=tpu, use_gpu=use_gpu)
    # Fail on an empty / unreadable data set before any model is built or anything written.
    pipeline.make_dataset(train_data, batch_size, shuffle=False, repeat=False)
    # Test-split scenes have no logged future to learn from: the pipeline skips them.
    counts = pipeline.history_only_count(train_data)
    if counts and counts[0]:
        logging.warning(
            "train data: skipping %d history-only (test split, no logged future) of %d scenes",
            *counts,
        )
    if batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(
            f"train.batch_size={batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    # One writer per run directory: the chief holds the lock for the whole run; the other
    # workers of a multi-worker run write only their own sub-directories of it.
    lock = run_lock.RunLock(root_dir, "training") if strategy_lib.is_chief(strategy) else None
    if lock is not None:
        lock.acquire()
    try:
        return _train(
            root_dir,
            strategy,
            mode=mode,
            train_data=train_data,
            batch_size=batch_size,
            max_steps=max_steps,
            steps_per_loop=steps_per_loop,
            checkpoint_interval=checkpoint_interval,
            summary_interval=summary_interval,
            log_interval=log_interval,
            grad_clip_norm=grad_clip_norm,
            max_consecutive_nonfinite=max_consecutive_nonfinite,
            init_checkpoint=init_checkpoint,
            cache_data=cache_data,
            shuffle_data=shuffle_data,
            seed=seed,
            jit_compile=jit_compile,
        )
    finally:
        if lock is not None:
            lock.release()


def _check_types(**values) -> None:
    """Gin accepts any literal; a string or a float where a count belongs would otherwise fail
    deep inside TF (a traceback, or "not divisible by the 1 replicas" for batch_size=2.5)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"train.{name}={value!r}: expected an integer, got {type(value).__name__}"
            )
        if value < (0 if name == "max_steps" else 1):
            raise ConfigError(
                f"train.{name}={value!r}: must be {'>= 0' if name == 'max_steps' else '>= 1'}"
            )


def _train(
    root_dir,
    strategy,
    *,
    mode,
    train_data,
    batch_size,
    max_steps,
    steps_per_loop,
    checkpoint_interval,
    summary_interval,
    log_interval,
    grad_clip_norm,
    max_consecutive_nonfinite,
    init_checkpoint,
    cache_data,
    shuffle_data,
    seed,
    jit_compile,
) -> dict:
    """The run itself, under the run-directory lock."""
    replicas = strategy.num_replicas_in_sync
    tf.keras.utils.set_random_seed(seed)

    def dataset_fn(ctx: tf.distribute.InputContext):
        return pipeline.make_dataset(
            train_data,
            batch_size,
            shuffle=shuffle_data,
            repeat=True,
            input_context=ctx,
            seed=seed,
            cache=cache_data,
        )

    rollout_fn = None
    try:
        # Gin builds these from the configuration, so a ValueError here is a bad hyperparameter
        # (or an unbound %gin.REQUIRED one): report it as a configuration error.
        tokenizer = tokenizer_lib.ActionTokenizer()
        with strategy.scope():
            model = SimAgentModel()
            optimizer = optimization.make_optimizer()
        if mode is Mode.BC:
            loss_fn = BCLoss(tokenizer=tokenizer)
        else:
            sampler = sampler_lib.Sampler(model, tokenizer=tokenizer)
            loss_fn = ReinforceLoss(steps_per_token=tokenizer.steps_per_token)
            rollout_fn = lambda scene, s: sampler(scene, s)  # noqa: E731
    except ValueError as e:
        raise ConfigError(str(e)) from e
    logging.info(
        "%s: %d parameters, %d replica(s), global batch %d",
        mode.value,
        model.count_params(),
        replicas,
        batch_size,
    )

    # Periodic SavedModel export (gin `make_export_triggers.interval`, off by default).
    exports = export_trigger.make_export_triggers(
        root_dir, model, tokenizer, is_chief=strategy_lib.is_chief(strategy)
    )
    learner = Learner(
        root_dir,
        strategy,
        model,
        optimizer,
        loss_fn,
        dataset_fn,
        rollout_fn=rollout_fn,
        max_steps=max_steps,
        steps_per_loop=steps_per_loop,
        checkpoint_interval=checkpoint_interval,
        summary_interval=summary_interval,
        log_interval=log_interval,
        grad_clip_norm=grad_clip_norm,
        max_consecutive_nonfinite=max_consecutive_nonfinite,
        seed=seed,
        init_checkpoint=init_checkpoint,
        is_chief=strategy_lib.is_chief(strategy),
        jit_compile=jit_compile,
        extra_triggers=exports,
    )
    # Rollout pictures in TensorBoard (gin `make_image_triggers.interval`, off by default).
    learner.extra_triggers.extend(
        image_trigger.make_image_triggers(
            learner.writer,
            model,
            tokenizer,
            train_data,
            start=int(learner.step.numpy()),
            is_chief=learner.is_chief,
            seed=seed,
        )
    )
    if learner.is_chief:
        write_operative_config(root_dir, learner.writer, int(learner.step.numpy()))
    return learner.run()


def enable_determinism() -> None:
    """Makes a run bit-reproducible; call before TF executes anything.

    Independent ops running concurrently on the inter-op pool made two identical CPU runs of
    30 steps differ by up to 2e-4 (measured); one inter-op thread made them bit-equal. Op
    determinism covers the GPU kernels (cuDNN, scatter) and makes tf.data keep its order.
    """
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.root_dir:
        raise app.UsageError("--root_dir is required")
    if not FLAGS.gin_file:
        raise app.UsageError("at least one --gin_file is required (e.g. gin/demo_pretrain.gin)")
    if FLAGS.deterministic:
        if FLAGS.tpu or os.environ.get("TF_CONFIG"):
            # Collective ops wait on each other across workers; with one inter-op thread that
            # wait can block the only thread (a known TF hang), so only single-host runs.
            raise app.UsageError(
                "--deterministic is for single-host runs: drop --tpu / TF_CONFIG, or run without it"
            )
        enable_determinism()
    try:
        parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
        train(FLAGS.root_dir, tpu=FLAGS.tpu, seed=FLAGS.seed)
    except (
        ConfigError,
        checkpointing.CheckpointError,
        FileNotFoundError,
        NonFiniteLossError,
        run_lock.RunLockError,
        pipeline.DataError,
    ) as e:
        _fail(e)
    except PermissionError as e:
        _fail(f"{e.filename}: {e.strerror}")


def _fail(e: Exception):
    # gin appends "\n  In call to configurable 'train' (<function ...>)" to exceptions raised
    # inside a configurable: noise that would make the one-line error two lines.
    message = str(e).split("\n  In call to configurable")[0]
    print(f"motion_sim.train: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
