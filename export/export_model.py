r"""Exports a trained policy from a training run as a WOSAC sim-agent SavedModel.

    python -m export.export_model --root_dir=runs/ft10m --output_dir=models/ft10m \
        [--checkpoint=runs/ft10m/checkpoints/ckpt-200000] [--num_rollouts=32] \
        [--temperature=1.0 --top_k=0 --top_p=1.0]

The model is rebuilt from the run's `operative_config.gin` (what training actually used: size,
token rate), its weights are restored from the newest checkpoint of `<root_dir>/checkpoints`
(or `--checkpoint`: a prefix, a checkpoint directory or a run directory) and every model
weight must be found there, else the export stops with an error naming the checkpoint. The
SavedModel (`export/signature.py` contract) needs TensorFlow only to run; `sim_agent.json`
inside it records `num_model_parameters` (the submission's default), the checkpoint, step,
model config, tokenizer and sampling settings.

Then: `python -m export.wosac_submission --saved_model=models/ft10m ...` or
`python -m export.report --saved_model=ft10m=models/ft10m ...`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import NamedTuple

import tensorflow as tf
from absl import app, flags

import gin
from export import loader, signature
from export.model_sim_agent import ModelSimAgent
from motion_sim.learner import checkpointing
from motion_sim.models.sim_agent_model import SimAgentModel
from motion_sim.tokenizer import ActionTokenizer

OPERATIVE_CONFIG = "operative_config.gin"
# `tf.train.Checkpoint(model=..., step=...)` of the learner: where the global step is stored.
_STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"


class ExportError(RuntimeError):
    """The run cannot be exported (missing config / checkpoint, or they do not match)."""


class TrainedPolicy(NamedTuple):
    """A policy restored from a run.

    Attributes:
      model: `SimAgentModel` with the checkpoint's weights.
      tokenizer: `ActionTokenizer` configured like the run's.
      checkpoint: the checkpoint prefix restored.
      step: the checkpoint's global step (None if it holds none).
      operative_config: path of the gin file the model was built from.
    """

    model: SimAgentModel
    tokenizer: ActionTokenizer
    checkpoint: str
    step: int | None
    operative_config: str


def build_from_operative_config(config_path: str) -> tuple[SimAgentModel, ActionTokenizer]:
    """A fresh (untrained) model + tokenizer with the hyperparameters recorded in `config_path`.

    Resets the global gin configuration before and after, so nothing leaks into the caller.
    Bindings of configurables this process does not import (train, optimizer, losses) are
    skipped; those of the model and tokenizer (imported here) are applied and checked by gin.
    """
    if not tf.io.gfile.exists(config_path):
        raise ExportError(
            f"{config_path} does not exist: is this a training run directory "
            "(motion_sim.train writes operative_config.gin there)?"
        )
    with tf.io.gfile.GFile(config_path) as f:
        text = f.read()
    gin.clear_config()
    try:
        gin.parse_config(text, skip_unknown=True)
        model = SimAgentModel()
        tokenizer = ActionTokenizer()
    except (ValueError, TypeError, KeyError, SyntaxError) as e:
        raise ExportError(f"{config_path}: cannot build the model from it ({e})") from e
    finally:
        gin.clear_config()
    return model, tokenizer


def restore_model(model: tf.keras.Model, checkpoint: str) -> tuple[str, int | None]:
    """Restores `model` from `checkpoint` (prefix, checkpoint dir or run dir).

    Returns (the checkpoint prefix restored, its global step or None).

    Every weight of the model must be in the checkpoint with the same shape, or `ExportError`
    names the checkpoint and what did not match. Optimizer slots, step and data iterator in the
    checkpoint are deliberately not restored (serving needs the weights only).
    """
    try:
        path = checkpointing.resolve_checkpoint(checkpoint)
    except checkpointing.CheckpointError as e:
        raise ExportError(str(e)) from e
    try:
        status = tf.train.Checkpoint(model=model).read(path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ExportError(
            f"checkpoint {path} does not match the model built from the run's config: {e}"
        ) from e
    reader = tf.train.load_checkpoint(path)
    step = int(reader.get_tensor(_STEP_KEY)) if reader.has_tensor(_STEP_KEY) else None
    return path, step


def load_trained_policy(root_dir: str, checkpoint: str | None = None) -> TrainedPolicy:
    """Model of run `root_dir` with the weights of `checkpoint` (default: the run's newest)."""
    config_path = os.path.join(root_dir, OPERATIVE_CONFIG)
    model, tokenizer = build_from_operative_config(config_path)
    # A run directory resolves to the newest checkpoint of <root_dir>/checkpoints.
    path, step = restore_model(model, checkpoint or root_dir)
    return TrainedPolicy(model, tokenizer, path, step, config_path)


def sim_agent_info(
    model: tf.keras.Model,
    tokenizer: ActionTokenizer,
    num_rollouts: int,
    temperature: float,
    top_k: int,
    top_p: float,
    **provenance,
) -> dict:
    """What `sim_agent.json` records (JSON-serialisable)."""
    return dict(
        kind="sim_agent_model",
        num_model_parameters=int(model.count_params()),
        num_rollouts=int(num_rollouts),
        model_config=model.get_config(),
        tokenizer=dict(
            token_hz=tokenizer.token_hz,
            num_tokens=tokenizer.num_tokens,
            vocab_size=tokenizer.vocab_size,
            num_bins=tokenizer.num_bins,
            max_accel=tokenizer.max_accel,
            still_distance=tokenizer.still_distance,
        ),
        sampling=dict(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p)),
        **provenance,
    )


def export_policy(
    model: tf.keras.Model,
    tokenizer: ActionTokenizer,
    output_dir: str,
    num_rollouts: int = 32,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    **provenance,
) -> str:
    """Writes `model` as a sim-agent SavedModel at `output_dir` (atomic); returns the path.

    `provenance` (checkpoint, step, root_dir, ...) goes into `sim_agent.json` with the
    parameter count and the sampling settings.
    """
    agent = ModelSimAgent(model, tokenizer, num_rollouts, temperature, top_k, top_p)
    info = sim_agent_info(model, tokenizer, num_rollouts, temperature, top_k, top_p, **provenance)
    return signature.export_sim_agent(
        agent,
        output_dir,
        num_rollouts,
        extra_files={loader.INFO_FILE: json.dumps(info, indent=1, sort_keys=True) + "\n"},
    )


def export_run(
    root_dir: str,
    output_dir: str,
    checkpoint: str | None = None,
    num_rollouts: int = 32,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> str:
    """`load_trained_policy` + `export_policy`; returns the SavedModel directory."""
    policy = load_trained_policy(root_dir, checkpoint)
    return export_policy(
        policy.model,
        policy.tokenizer,
        output_dir,
        num_rollouts,
        temperature,
        top_k,
        top_p,
        root_dir=os.path.abspath(root_dir),
        checkpoint=os.path.abspath(policy.checkpoint),
        step=policy.step,
    )


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_string(
        "root_dir", None, "Training run directory (operative_config.gin, checkpoints/)."
    )
    flags.DEFINE_string("output_dir", None, "SavedModel directory to write.")
    flags.DEFINE_string(
        "checkpoint",
        None,
        "Checkpoint prefix or directory (default: the newest of <root_dir>/checkpoints).",
    )
    flags.DEFINE_integer("num_rollouts", 32, "Rollouts per scenario (WOSAC: 32).")
    flags.DEFINE_float("temperature", 1.0, "Sampling temperature (> 0).")
    flags.DEFINE_integer("top_k", 0, "Sample from the k most likely tokens (0 = all).")
    flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass (1 = all).")
    flags.mark_flags_as_required(["root_dir", "output_dir"])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    try:
        path = export_run(
            f.root_dir, f.output_dir, f.checkpoint, f.num_rollouts, f.temperature, f.top_k, f.top_p
        )
    except (ExportError, ValueError, FileExistsError) as e:
        print(f"export_model: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    info = loader.read_sim_agent_info(path)
    print(
        json.dumps(
            {
                "saved_model": path,
                "checkpoint": info["checkpoint"],
                "step": info["step"],
                "num_model_parameters": info["num_model_parameters"],
            }
        )
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
