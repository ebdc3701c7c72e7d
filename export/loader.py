"""Loads a sim-agent SavedModel with TensorFlow alone (no motion_sim import).

Whatever runs a submission or an evaluation on another machine needs only this file, the
SavedModel directory and TensorFlow: the graph carries the model, the sampler and the
scene -> world transform (`export/signature.py` documents the contract).
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

# Duplicated from export.signature on purpose: importing it would pull in motion_sim.
SIGNATURE_NAME = "serving_default"
SEED_KEY = "seed"
OUTPUT_KEYS = ("trajectories", "object_ids", "agent_mask")
START_SIGNATURE = "closed_loop_start"
STEP_SIGNATURE = "closed_loop_step"
STATE_PREFIX = "state_"
# Written beside saved_model.pb by export.export_model: provenance + num_model_parameters.
INFO_FILE = "sim_agent.json"


class SimAgentLoadError(RuntimeError):
    """The directory is not a loadable sim-agent SavedModel; the message names it."""


class LoadedSimAgent:
    """A loaded sim agent: `run(inputs, seed)` -> world-frame rollouts.

    Attributes:
      export_dir: the SavedModel directory.
      num_rollouts: R of the exported signature.
      input_names: names of the signature inputs (Scene fields + "seed").
    """

    def __init__(self, export_dir: str):
        self.export_dir = export_dir
        if not os.path.isdir(export_dir):
            raise SimAgentLoadError(f"{export_dir}: no such SavedModel directory")
        try:
            self._loaded = tf.saved_model.load(export_dir)
        except Exception as e:  # TF raises OSError, ValueError, DataLossError, ... here.
            raise SimAgentLoadError(
                f"{export_dir}: cannot load SavedModel ({type(e).__name__}: {e})"
            ) from e
        signatures = getattr(self._loaded, "signatures", {})
        if SIGNATURE_NAME not in signatures:
            raise SimAgentLoadError(
                f"{export_dir}: SavedModel has no '{SIGNATURE_NAME}' signature "
                f"(has {sorted(signatures)}); export it with export.signature.export_sim_agent"
            )
        self._fn = signatures[SIGNATURE_NAME]
        outputs = self._fn.structured_outputs
        missing = [k for k in OUTPUT_KEYS if k not in outputs]
        if missing:
            raise SimAgentLoadError(
                f"{export_dir}: serving signature lacks outputs {missing}; not a sim-agent model"
            )
        self.num_rollouts = int(outputs["trajectories"].shape[1])
        self._input_specs = self._fn.structured_input_signature[1]
        self.input_names = tuple(sorted(self._input_specs))

    def run(self, inputs: dict, seed) -> dict[str, np.ndarray]:
        """Batched scene inputs (numpy, Scene field names) + int64 [2] seed -> numpy outputs.

        Returns trajectories float32 [B, R, A, 80, 4] (world x, y, z, heading),
        object_ids int64 [B, A], agent_mask bool [B, A].
        """
        return self.call(self.feed(inputs, seed))

    def feed(self, inputs: dict, seed) -> dict[str, tf.Tensor]:
        """The signature's keyword arguments (tensors of its dtypes) for `inputs` and `seed`."""
        feed = {}
        for name, spec in self._input_specs.items():
            value = np.asarray(seed, np.int64) if name == SEED_KEY else inputs.get(name)
            if value is None:
                raise ValueError(f"{self.export_dir}: input '{name}' missing from the scene")
            feed[name] = tf.convert_to_tensor(value, dtype=spec.dtype)
        return feed

    def call_tensors(self, feed: dict) -> dict[str, tf.Tensor]:
        """Runs the signature on a `feed` (also inside `strategy.run`); tensor outputs."""
        outputs = self._fn(**feed)
        return {k: outputs[k] for k in OUTPUT_KEYS}

    def call(self, feed: dict) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.call_tensors(feed).items()}


class ClosedLoopStepper:
    """A SavedModel's closed-loop step API (`export.signature` documents it), TF only.

    `start(scene, seed, forced_tokens, forced_mask)` and `step(state, forced_tokens,
    forced_mask)` return (state, tokens [1, R, A], log_probs [1, R, A]) like `Sampler.start` /
    `Sampler.step`; the state is the signature's flat dict of tensors, passed back as is.
    """

    def __init__(self, loaded: LoadedSimAgent):
        signatures = loaded._loaded.signatures
        if START_SIGNATURE not in signatures or STEP_SIGNATURE not in signatures:
            raise SimAgentLoadError(
                f"{loaded.export_dir}: SavedModel has no closed-loop step signatures "
                f"({START_SIGNATURE}, {STEP_SIGNATURE}); re-export it with export.export_model"
            )
        self.export_dir = loaded.export_dir
        self._start = signatures[START_SIGNATURE]
        self._step = signatures[STEP_SIGNATURE]
        self._start_specs = self._start.structured_input_signature[1]

    @staticmethod
    def _split(outputs):
        state = {k: v for k, v in outputs.items() if k.startswith(STATE_PREFIX)}
        return state, outputs["tokens"].numpy(), outputs["log_probs"].numpy()

    def start(self, scene: dict, seed, forced_tokens, forced_mask):
        feed = {}
        for name, spec in self._start_specs.items():
            if name == SEED_KEY:
                value = np.asarray(seed, np.int64)
            elif name in ("forced_tokens", "forced_mask"):
                value = forced_tokens if name == "forced_tokens" else forced_mask
            else:
                value = scene.get(name)
                if value is None:
                    raise ValueError(f"{self.export_dir}: input '{name}' missing from the scene")
            feed[name] = tf.convert_to_tensor(value, dtype=spec.dtype)
        return self._split(self._start(**feed))

    def step(self, state: dict, forced_tokens, forced_mask):
        return self._split(
            self._step(
                **state,
                forced_tokens=tf.constant(forced_tokens, tf.int32),
                forced_mask=tf.constant(forced_mask, tf.bool),
            )
        )


def load_sim_agent(export_dir: str) -> LoadedSimAgent:
    """Loads `export_dir`; raises `SimAgentLoadError` naming it when that is impossible."""
    return LoadedSimAgent(export_dir)


def read_sim_agent_info(export_dir: str) -> dict:
    """The exporter's `sim_agent.json` of a SavedModel directory ({} when it has none).

    Trained-model exports record `num_model_parameters`, the checkpoint and the sampling
    settings there, so the submission generator can fill its metadata from the model itself.
    """
    path = os.path.join(export_dir, INFO_FILE)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise SimAgentLoadError(f"{path}: unreadable sim-agent info ({e})") from e
    if not isinstance(info, dict):
        raise SimAgentLoadError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info
