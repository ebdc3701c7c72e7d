"""A trained `SimAgentModel` + `Sampler` behind the sim-agent serving contract.

`ModelSimAgent.simulate(scene, seed, num_rollouts)` returns scene-frame (x, y, z, heading)
[B, R, A, 80, 4] like every other sim agent (`export/signature.py`), so a trained policy is
exported, loaded, submitted and scored by exactly the code paths the baselines use.

The sampler compiles one XLA program per static scene shape, while the serving signature has a
dynamic batch axis B; each scene of the batch is therefore rolled out on its own (batch 1,
static shape) inside a `tf.map_fn`. Scene b samples with seed `row_seed(seed, b)` =
stateless_fold_in(seed, b): rows get independent randomness and a scene's rollouts do not
depend on which other scenes share its batch.
"""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.models import inputs
from motion_sim.sampler import Sampler
from motion_sim.tokenizer import ActionTokenizer

# Everything the sampler reads (model fields + the frame for its world outputs) and agent_z,
# which the policy does not predict (2-D dynamics): each agent holds its current height.
_SCENE_FIELDS = inputs.MODEL_SCENE_FIELDS + ("frame_origin", "frame_yaw", "agent_z")


def row_seed(seed: tf.Tensor, row) -> tf.Tensor:
    """int64 [2] seed of batch row `row` given the call's int64 [2] `seed`."""
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), row)


class ModelSimAgent(tf.Module):
    """Sim agent backed by a trained policy.

    Args:
      model: the trained `SimAgentModel` (its variables are saved with the agent).
      tokenizer: the `ActionTokenizer` the model was trained with (token rate, grid).
      num_rollouts: R per scene, fixed (one compiled rollout program).
      temperature, top_k, top_p: sampling settings (`Sampler`); 1, 0, 1 = the policy itself.

    Attributes:
      model: the policy (tracked: a SavedModel / checkpoint of this module holds its weights).
      sampler: the compiled `Sampler` (plain object; its settings are baked into the graph).
    """

    def __init__(
        self,
        model: tf.keras.Model,
        tokenizer: ActionTokenizer,
        num_rollouts: int = 32,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
    ):
        super().__init__(name="model_sim_agent")
        self.model = model
        self.sampler = Sampler(
            model,
            tokenizer=tokenizer,
            num_rollouts=num_rollouts,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
        )

    @property
    def num_rollouts(self) -> int:
        return self.sampler.num_rollouts

    def simulate(self, scene: dict, seed: tf.Tensor, num_rollouts: int) -> tf.Tensor:
        """Scene-frame float32 [B, R, A, 80, 4] (x, y, z, heading); rows of padding are zero."""
        if int(num_rollouts) != self.sampler.num_rollouts:
            raise ValueError(
                f"this agent samples {self.sampler.num_rollouts} rollouts per scene "
                f"(fixed when it was built), asked for {num_rollouts}"
            )
        missing = [k for k in _SCENE_FIELDS if k not in scene]
        if missing:
            raise ValueError(f"scene lacks fields {missing}")
        scene = {k: tf.convert_to_tensor(scene[k]) for k in _SCENE_FIELDS}
        batch = tf.shape(scene["agent_mask"])[0]
        out_spec = tf.TensorSpec(
            [self.sampler.num_rollouts, datatypes.MAX_AGENTS, datatypes.NUM_FUTURE_STEPS, 4],
            tf.float32,
        )
        return tf.map_fn(
            lambda b: self._simulate_row(scene, seed, b),
            tf.range(batch),
            fn_output_signature=out_spec,
        )

    def _simulate_row(self, scene: dict, seed: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """Rollouts [R, A, 80, 4] of batch row b (run as a batch of one, static shapes)."""
        one = {k: v[b][tf.newaxis] for k, v in scene.items()}
        rollout = self.sampler(one, row_seed(seed, b))
        xy, heading = rollout.xy[0], rollout.heading[0]  # [R, A, 80, 2], [R, A, 80]
        z_now = tf.cast(one["agent_z"][0, :, datatypes.CURRENT_INDEX], tf.float32)  # [A]
        z_now = tf.where(one["agent_mask"][0], z_now, tf.zeros_like(z_now))
        z = tf.broadcast_to(z_now[tf.newaxis, :, tf.newaxis], tf.shape(heading))
        return tf.concat([xy, z[..., tf.newaxis], heading[..., tf.newaxis]], axis=-1)

    def closed_loop_start(
        self, scene: dict, seed: tf.Tensor, forced_tokens: tf.Tensor, forced_mask: tf.Tensor
    ):
        """Closed-loop stepping, step 0 (`Sampler.start`): one scene [1, ...], R worlds.

        forced_tokens / forced_mask: [1, R, A] (the AV's executed motion as its token).
        Returns (StepState, tokens [1, R, A], log_probs [1, R, A]).
        """
        scene = {k: tf.convert_to_tensor(scene[k]) for k in inputs.MODEL_SCENE_FIELDS}
        return self.sampler.start(scene, tf.cast(seed, tf.int32), forced_tokens, forced_mask)

    def closed_loop_step(self, state, forced_tokens: tf.Tensor, forced_mask: tf.Tensor):
        """Closed-loop stepping, steps 1..T-1 (`Sampler.step`)."""
        return self.sampler.step(state, forced_tokens, forced_mask)
