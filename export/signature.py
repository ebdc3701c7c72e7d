"""The SavedModel serving contract every sim agent (trained model or baseline) exports.

A *sim agent* is anything with

    simulate(scene: dict[str, tf.Tensor], seed: tf.Tensor, num_rollouts: int) -> tf.Tensor

where `scene` holds the `motion_sim.data.datatypes.Scene` fields with a leading batch axis B,
`seed` is an int64 [2] stateless-random seed, and the result is float32
[B, num_rollouts, A, NUM_FUTURE_STEPS, 4] of (x, y, z, heading) in the *scene* frame for the
future steps 11..90 (z relative to `frame_origin[2]`, like `Scene.agent_z`). A `tf.Module` with
that method (its variables are saved with it) or a plain function both work.

`export_sim_agent` wraps it in `SimAgentServing`, whose `serving_default` signature is the
contract the submission generator and `evaluate.py --saved_model` rely on:

  inputs (batch axis B first; see `serving_input_spec`):
    every `Scene` field, same name, dtype and shape as `datatypes.scene_spec()` with a leading
    None axis; `scenario_id` is tf.string [B];
    seed: int64 [2].
  outputs:
    trajectories: float32 [B, R, A, 80, 4] world-frame (x, y, z, heading), R = num_rollouts
      fixed at export time; rows with agent_mask False are zero.
    object_ids: int64 [B, A] (`Scene.agent_id`, -1 for padding).
    agent_mask: bool [B, A] (`Scene.agent_mask`).

The scene -> world transform lives here, once, so that every agent only thinks in the scene
frame. The exported graph needs only TensorFlow to run (`export.loader.load_sim_agent`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, Union

import numpy as np
import tensorflow as tf

from motion_sim.data import datatypes, frames

SIGNATURE_NAME = "serving_default"
# Optional closed-loop step API (agents with closed_loop_start / closed_loop_step, e.g. a
# trained model): one scene (batch 1), R worlds, an external agent's tokens forced each step.
START_SIGNATURE = "closed_loop_start"
STEP_SIGNATURE = "closed_loop_step"
STATE_PREFIX = "state_"
SEED_KEY = "seed"
OUTPUT_KEYS = ("trajectories", "object_ids", "agent_mask")

SimulateFn = Callable[[dict, tf.Tensor, int], tf.Tensor]


def serving_input_spec() -> dict[str, tf.TensorSpec]:
    """Name -> batched `tf.TensorSpec` of every serving input (Scene fields + seed)."""
    specs = {}
    for name, (shape, np_dtype) in datatypes.scene_spec().items():
        # Scene ids are Python/NumPy objects in a `Scene`; in a graph they are tf.string.
        dtype = tf.string if np_dtype is np.object_ else tf.as_dtype(np_dtype)
        specs[name] = tf.TensorSpec((None,) + tuple(shape), dtype, name=name)
    specs[SEED_KEY] = tf.TensorSpec((2,), tf.int64, name=SEED_KEY)
    return specs


def to_world(trajectories: tf.Tensor, frame_origin: tf.Tensor, frame_yaw: tf.Tensor) -> tf.Tensor:
    """Scene-frame (x, y, z, heading) [B, ..., 4] -> world frame float32, computed in float64.

    xy and heading through `frames.to_world_tf`; z + frame_origin[2].
    """
    x, y, z, heading = tf.unstack(tf.cast(trajectories, tf.float64), axis=-1)
    world_xy, world_heading = frames.to_world_tf(
        tf.stack([x, y], axis=-1), heading, frame_origin, frame_yaw
    )
    extra_axes = trajectories.shape.rank - 2
    oz = tf.reshape(tf.cast(frame_origin, tf.float64)[:, 2], [-1] + [1] * extra_axes)
    world = tf.concat([world_xy, (z + oz)[..., None], world_heading[..., None]], axis=-1)
    return tf.cast(world, tf.float32)


class SimAgentServing(tf.Module):
    """Wraps a sim agent in the serving signature (scene-frame agent -> world-frame outputs).

    Attributes:
      agent: the wrapped sim agent (tracked, so a `tf.Module`'s variables are saved).
      num_rollouts: R, fixed at construction (a static shape keeps one compiled program).
      serve: the `tf.function` exported as the `serving_default` signature.
    """

    def __init__(self, agent: Union[tf.Module, SimulateFn], num_rollouts: int = 32):
        super().__init__(name="sim_agent_serving")
        if num_rollouts < 1:
            raise ValueError(f"num_rollouts must be >= 1, got {num_rollouts}")
        self.agent = agent
        self.num_rollouts = int(num_rollouts)
        self._simulate = agent.simulate if hasattr(agent, "simulate") else agent
        if not callable(self._simulate):
            raise TypeError(f"{agent!r} has no simulate() and is not callable")
        self.serve = tf.function(self._serve, input_signature=[serving_input_spec()])
        self.closed_loop = hasattr(agent, "closed_loop_start") and hasattr(
            agent, "closed_loop_step"
        )

    def closed_loop_signatures(self) -> dict:
        """{name: concrete function} of the closed-loop start / step signatures ({} if none).

          closed_loop_start(every Scene field [1, ...], seed int64 [2], forced_tokens int32
            [1, R, A], forced_mask bool [1, R, A]) -> state_000.. (the decoding state,
            flattened), tokens int32 [1, R, A], log_probs float32 [1, R, A];
          closed_loop_step(state_000.., forced_tokens, forced_mask) -> the same outputs.
        R is open (the step compiles once per R). Token ids are those of `sim_agent.json`'s
        tokenizer; the caller encodes its AV motion with that tokenizer.
        """
        if not self.closed_loop:
            return {}
        agent = self.agent
        num_agents = datatypes.MAX_AGENTS
        start_spec = {
            k: tf.TensorSpec((1,) + tuple(v.shape[1:]), v.dtype, name=k)
            for k, v in serving_input_spec().items()
            if k != SEED_KEY
        }
        forced_spec = {
            "forced_tokens": tf.TensorSpec([1, None, num_agents], tf.int32, name="forced_tokens"),
            "forced_mask": tf.TensorSpec([1, None, num_agents], tf.bool, name="forced_mask"),
        }
        start_spec.update(forced_spec, **{SEED_KEY: tf.TensorSpec((2,), tf.int64, name=SEED_KEY)})

        def flat_outputs(state, tokens, log_probs):
            out = {f"{STATE_PREFIX}{i:03d}": t for i, t in enumerate(tf.nest.flatten(state))}
            out.update(tokens=tokens, log_probs=log_probs)
            return out

        def start(inputs):
            scene = {k: v for k, v in inputs.items() if k not in forced_spec and k != SEED_KEY}
            return flat_outputs(
                *agent.closed_loop_start(
                    scene, inputs[SEED_KEY], inputs["forced_tokens"], inputs["forced_mask"]
                )
            )

        start_fn = tf.function(start, input_signature=[start_spec])
        # The state's structure and specs, from a trace of the start function.
        traced = tf.function(agent.closed_loop_start).get_concrete_function(
            {k: v for k, v in start_spec.items() if k not in forced_spec and k != SEED_KEY},
            start_spec[SEED_KEY],
            forced_spec["forced_tokens"],
            forced_spec["forced_mask"],
        )
        state_struct = traced.structured_outputs[0]
        leaves = tf.nest.flatten(state_struct)
        step_spec = {
            f"{STATE_PREFIX}{i:03d}": tf.TensorSpec(t.shape, t.dtype, name=f"{STATE_PREFIX}{i:03d}")
            for i, t in enumerate(leaves)
        }
        step_spec.update(forced_spec)

        def step(inputs):
            state = tf.nest.pack_sequence_as(
                state_struct, [inputs[f"{STATE_PREFIX}{i:03d}"] for i in range(len(leaves))]
            )
            return flat_outputs(
                *agent.closed_loop_step(state, inputs["forced_tokens"], inputs["forced_mask"])
            )

        step_fn = tf.function(step, input_signature=[step_spec])
        return {
            START_SIGNATURE: start_fn.get_concrete_function(),
            STEP_SIGNATURE: step_fn.get_concrete_function(),
        }

    def _serve(self, inputs: dict) -> dict:
        seed = inputs[SEED_KEY]
        scene = {k: v for k, v in inputs.items() if k != SEED_KEY}
        scene_traj = tf.convert_to_tensor(self._simulate(scene, seed, self.num_rollouts))
        want = [self.num_rollouts, datatypes.MAX_AGENTS, datatypes.NUM_FUTURE_STEPS, 4]
        if not scene_traj.shape[1:].is_compatible_with(want):
            raise ValueError(
                f"{self.agent!r}: simulate() returned shape {scene_traj.shape}, "
                f"the contract is [B, R, A, 80, 4] = [B] + {want}"
            )
        batch = tf.shape(scene["agent_mask"])[0]
        tf.debugging.assert_equal(
            tf.shape(scene_traj),
            tf.stack(
                [batch, self.num_rollouts, datatypes.MAX_AGENTS, datatypes.NUM_FUTURE_STEPS, 4]
            ),
            message="simulate() must return [B, R, A, 80, 4]",
        )
        world = to_world(scene_traj, scene["frame_origin"], scene["frame_yaw"])
        # Padding rows would otherwise sit at the frame origin and look like real agents.
        mask = scene["agent_mask"][:, tf.newaxis, :, tf.newaxis, tf.newaxis]
        world = tf.where(mask, world, tf.zeros_like(world))
        world = tf.ensure_shape(
            world, [None, self.num_rollouts, datatypes.MAX_AGENTS, datatypes.NUM_FUTURE_STEPS, 4]
        )
        return {
            "trajectories": world,
            "object_ids": tf.identity(scene["agent_id"]),
            "agent_mask": tf.identity(scene["agent_mask"]),
        }

    def run(self, inputs: dict, seed) -> dict[str, np.ndarray]:
        """In-process twin of `LoadedSimAgent.run`: batched numpy inputs -> numpy outputs."""
        feed = dict(inputs)
        feed[SEED_KEY] = np.asarray(seed, np.int64)
        outputs = self.serve(feed)
        return {k: v.numpy() for k, v in outputs.items()}


def export_sim_agent(
    module_or_fn: Union[tf.Module, SimulateFn, SimAgentServing],
    export_dir: str,
    num_rollouts: int = 32,
    extra_files: dict[str, str] | None = None,
) -> str:
    """Writes a sim-agent SavedModel with the serving signature; returns `export_dir`.

    `extra_files` (file name -> text, e.g. `sim_agent.json` with the parameter count) are
    written into the model directory before it is renamed into place, so they are part of
    the same atomic commit as the graph.

    Atomic: the model is written to a temporary sibling directory and renamed into place, so a
    crash never leaves a half-written model at `export_dir`. An existing SavedModel at
    `export_dir` is replaced (the old one is removed only after the new one is complete); a
    non-empty directory that is not a SavedModel is refused.
    """
    serving = (
        module_or_fn
        if isinstance(module_or_fn, SimAgentServing)
        else SimAgentServing(module_or_fn, num_rollouts)
    )
    export_dir = os.path.abspath(export_dir)
    if (
        os.path.isdir(export_dir)
        and os.listdir(export_dir)
        and not os.path.exists(os.path.join(export_dir, "saved_model.pb"))
    ):
        # Replacing is meant for re-exports; never delete a directory that holds anything else.
        raise FileExistsError(
            f"{export_dir} exists and is not a SavedModel; refusing to replace it"
        )
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.tmp-", dir=parent)
    try:
        signatures = {SIGNATURE_NAME: serving.serve.get_concrete_function()}
        signatures.update(serving.closed_loop_signatures())
        tf.saved_model.save(serving, tmp_dir, signatures=signatures)
        for name, text in (extra_files or {}).items():
            if os.path.basename(name) != name or name in ("saved_model.pb", "variables", "assets"):
                raise ValueError(
                    f"extra file name {name!r} must be a plain file name that is "
                    "not part of the SavedModel layout"
                )
            with open(os.path.join(tmp_dir, name), "w") as f:
                f.write(text)
        if os.path.exists(export_dir):
            old = tmp_dir + ".old"
            os.rename(export_dir, old)
            os.rename(tmp_dir, export_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp_dir, export_dir)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir)
    return export_dir
