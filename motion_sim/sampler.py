"""Compiled, KV-cached autoregressive rollouts of `SimAgentModel` (all agents jointly).

The whole rollout -- scene encoding, R rollouts per scene, the `tf.while_loop` over token steps
and the decoding of tokens to 10 Hz trajectories -- is ONE `tf.function(jit_compile=True)`,
built once per `Sampler` and reused (shapes fixed by the scene batch, so a second call with the
same shapes does not retrace). R rollouts of a scene share one scene encoding and one decoding
of step 0 (whose input, START, is the same for all of them); from step 1 the decoder carries
them as a B*R batch and folds R into the cross-attention query axis.

Sampling is stateless: step t draws with seed fold_in(seed, t), so a rollout is a pure function
of (weights, scene, seed, forced tokens) -- reproducible across calls and machines.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

import gin
from motion_sim.data import datatypes, frames
from motion_sim.layers.masks import MASK_VALUE
from motion_sim.models import inputs
from motion_sim.tokenizer import ActionTokenizer

_CUR = datatypes.CURRENT_INDEX


class StepState(NamedTuple):
    """Closed-loop decoding state between token steps (a `tf.nest` structure).

    Attributes:
      step: [] int32 token step t that the next `Sampler.step` samples.
      prev_tokens: [B*R, A] int32 tokens of step t - 1 (rows b * R + r).
      cache: the model's `DecodeCache` holding steps < t.
      seed: [2] int32 seed of the rollout (step t draws with fold_in(seed, t)).
    """

    step: tf.Tensor
    prev_tokens: tf.Tensor
    cache: object
    seed: tf.Tensor


class RolloutOutput(NamedTuple):
    """Sampled joint rollouts. B scenes, R rollouts, A agents, T token steps, 80 10 Hz steps.

    Attributes:
      tokens: [B, R, A, T] int32 chosen action tokens (forced ones where forced; the zero-
        acceleration token for padded agents).
      log_probs: [B, R, A, T] float32 log pi(token) under the temperature-1 policy (also for
        forced tokens); 0 for padded agents.
      xy: [B, R, A, 80, 2] float32 scene-frame positions of steps 11..90 (0 for padded agents).
      heading: [B, R, A, 80] float32 scene-frame yaw.
      world_xy: [B, R, A, 80, 2] float32 world positions (computed in float64, then cast).
      world_heading: [B, R, A, 80] float32 world yaw, wrapped to [-pi, pi).
    """

    tokens: tf.Tensor
    log_probs: tf.Tensor
    xy: tf.Tensor
    heading: tf.Tensor
    world_xy: tf.Tensor
    world_heading: tf.Tensor


def filter_logits(logits: tf.Tensor, top_k: int = 0, top_p: float = 1.0) -> tf.Tensor:
    """Masks logits [..., V] (float32) outside the top-k / nucleus (top-p) set with MASK_VALUE.

    top_k = 0 and top_p = 1 keep everything. The most likely token always survives.
    """
    if top_k:
        kth = tf.math.top_k(logits, k=top_k).values[..., -1:]
        logits = tf.where(logits < kth, tf.constant(MASK_VALUE, logits.dtype), logits)
    if top_p < 1.0:
        sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
        probs = tf.nn.softmax(sorted_logits, axis=-1)
        # Mass strictly before each sorted token; keep tokens that start inside the top_p mass.
        before = tf.cumsum(probs, axis=-1, exclusive=True)
        keep = before < top_p
        num_keep = tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1, keepdims=True)
        cutoff = tf.gather(sorted_logits, num_keep - 1, axis=-1, batch_dims=len(logits.shape) - 1)
        logits = tf.where(logits < cutoff, tf.constant(MASK_VALUE, logits.dtype), logits)
    return logits


@gin.configurable
class Sampler:
    """Samples R joint rollouts per scene from a `SimAgentModel`.

    Args:
      model: the policy.
      tokenizer: `ActionTokenizer` (its num_tokens T and dynamics); default 2 Hz.
      num_rollouts: R per scene (32 for WOSAC).
      temperature: > 0, divides the logits before filtering / sampling.
      top_k: keep the k most likely tokens (0 = all). top_p: nucleus mass (1 = all).
    """

    def __init__(
        self,
        model,
        tokenizer: ActionTokenizer | None = None,
        num_rollouts: int = 32,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
    ):
        tokenizer = tokenizer or ActionTokenizer()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0 <= top_k <= tokenizer.vocab_size:
            raise ValueError(f"top_k must be in [0, {tokenizer.vocab_size}], got {top_k}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if tokenizer.vocab_size != model.vocab_size:
            raise ValueError(
                f"tokenizer vocab {tokenizer.vocab_size} != model vocab {model.vocab_size}"
            )
        if tokenizer.num_tokens > model.max_steps:
            raise ValueError(
                f"tokenizer needs {tokenizer.num_tokens} steps > model max_steps {model.max_steps}"
            )
        self.model, self.tokenizer = model, tokenizer
        self.num_rollouts, self.temperature = int(num_rollouts), float(temperature)
        self.top_k, self.top_p = int(top_k), float(top_p)
        self.trace_count = 0  # incremented each time the rollout is (re)traced
        self.step_trace_count = 0  # same for the closed-loop start / step functions
        self._rollout_fn = tf.function(self._rollout, jit_compile=True)
        # Closed-loop stepping: the rollout's own first step and loop body, compiled on their
        # own (one program per shape), the cache passed in and returned.
        self._start_fn = tf.function(self._start, jit_compile=True)
        self._step_fn = tf.function(self._step, jit_compile=True)

    def __call__(self, scene, seed, forced_tokens=None, forced_mask=None) -> RolloutOutput:
        """Samples rollouts.

        Args:
          scene: batched `Scene` or dict (leading axis B); must include frame_origin/frame_yaw.
          seed: int or [2] int32 seed.
          forced_tokens: optional [B, A, T] int tokens that replace the sampled ones where
            forced_mask [B, A, T] is True (replaying logged agents, or an external planner's
            executed motion for the AV while the others react). Both or neither.
        Returns: `RolloutOutput`.
        """
        scene = datatypes.scene_fields(scene)
        model_inputs = inputs.scene_inputs(scene)
        batch, num_agents = model_inputs["agent_mask"].shape[:2]
        shape = [batch, num_agents, self.tokenizer.num_tokens]
        if (forced_tokens is None) != (forced_mask is None):
            raise ValueError("pass forced_tokens and forced_mask together")
        if forced_tokens is None:  # same signature either way: one compiled program
            forced_tokens = tf.zeros(shape, tf.int32)
            forced_mask = tf.zeros(shape, tf.bool)
        forced_tokens = tf.cast(forced_tokens, tf.int32)
        forced_mask = tf.cast(forced_mask, tf.bool)
        if forced_tokens.shape != shape or forced_mask.shape != shape:
            raise ValueError(
                f"forced_tokens/forced_mask must be {shape}, got "
                f"{forced_tokens.shape} / {forced_mask.shape}"
            )
        seed = _seed(seed)
        frame = (
            tf.convert_to_tensor(scene["frame_origin"], tf.float64),
            tf.convert_to_tensor(scene["frame_yaw"], tf.float64),
        )
        return self._rollout_fn(model_inputs, frame, seed, forced_tokens, forced_mask)

    # ------------------------------------------------------------ stepping
    def start(self, scene, seed, forced_tokens, forced_mask):
        """Closed-loop stepping, step 0: encodes the scene and samples token step 0.

        The same compiled step the rollout runs (`_first_step`), exposed so that something
        outside (an AV planner) can supply one agent's token at each step after seeing the
        world so far. R worlds per scene run batched; their count is the R axis of the forced
        tokens (any R, one compiled program per shape).

        Args:
          scene: batched `Scene` or dict (B scenes).
          seed: int or [2] int32 seed (step t draws with fold_in(seed, t), as the rollout).
          forced_tokens: [B, R, A] int tokens of step 0 that replace the sampled ones where
            forced_mask [B, R, A] is True.
        Returns: (`StepState`, tokens [B, R, A] int32, log_probs [B, R, A] float32) of step 0.
        """
        scene = datatypes.scene_fields(scene)
        model_inputs = inputs.scene_inputs(scene)
        forced_tokens, forced_mask = self._step_forcing(forced_tokens, forced_mask)
        batch, num_rollouts = forced_tokens.shape[:2]
        if batch != model_inputs["agent_mask"].shape[0]:
            raise ValueError(
                f"forced tokens cover {batch} scenes, the scene batch has "
                f"{model_inputs['agent_mask'].shape[0]}"
            )
        state, tokens, log_probs = self._start_fn(
            model_inputs, _seed(seed), _fold(forced_tokens), _fold(forced_mask)
        )
        return state, _unfold(tokens, batch), _unfold(log_probs, batch)

    def step(self, state: StepState, forced_tokens, forced_mask):
        """Closed-loop stepping, steps 1..T-1: samples token step `state.step`.

        Args:
          state: from `start` or the previous `step`.
          forced_tokens, forced_mask: [B, R, A] this step's forced tokens (see `start`).
        Returns: (next `StepState`, tokens [B, R, A], log_probs [B, R, A]).
        """
        forced_tokens, forced_mask = self._step_forcing(forced_tokens, forced_mask)
        batch = forced_tokens.shape[0]
        state, tokens, log_probs = self._step_fn(state, _fold(forced_tokens), _fold(forced_mask))
        return state, _unfold(tokens, batch), _unfold(log_probs, batch)

    @staticmethod
    def _step_forcing(forced_tokens, forced_mask):
        forced_tokens = tf.cast(forced_tokens, tf.int32)
        forced_mask = tf.cast(forced_mask, tf.bool)
        if forced_tokens.shape.rank != 3 or forced_tokens.shape != forced_mask.shape:
            raise ValueError(
                f"forced_tokens/forced_mask must both be [B, R, A], got "
                f"{forced_tokens.shape} / {forced_mask.shape}"
            )
        return forced_tokens, forced_mask

    # ---------------------------------------------------------------- compiled
    def _sample(self, t, logits, seed, agent_mask, forced_tokens, forced_mask):
        """Tokens and log-probs [B*R, A] of step t from its logits [B*R, A, V] float32."""
        logp = tf.nn.log_softmax(logits, axis=-1)  # temperature-1 policy (for RL)
        sample_logits = filter_logits(logits / self.temperature, self.top_k, self.top_p)
        step_seed = tf.random.experimental.stateless_fold_in(seed, t)
        sampled = tf.random.stateless_categorical(
            tf.reshape(sample_logits, [-1, sample_logits.shape[-1]]), 1, step_seed, dtype=tf.int32
        )
        choice = tf.reshape(sampled, tf.shape(agent_mask))
        choice = tf.where(forced_mask, forced_tokens, choice)
        # Padded agents coast (zero acceleration) and carry no probability mass.
        choice = tf.where(agent_mask, choice, tf.fill(tf.shape(choice), self.tokenizer.zero_token))
        lp = tf.gather(logp, choice, axis=-1, batch_dims=2)
        return choice, tf.where(agent_mask, lp, tf.zeros_like(lp))

    def _first_step(self, scene, seed, forced_tokens, forced_mask):
        """Step 0 of R rollouts per scene -> (StepState, tokens, log_probs), rows b * R + r.

        Step 0's input is START for every rollout, so its logits and cache entries are the
        same for all R rollouts of a scene: decode it once per scene, then copy the cache.
        R = rows of forced_tokens [B*R, A] / B.
        """
        model = self.model
        batch = scene["agent_mask"].shape[0]
        rows = forced_tokens.shape[0]
        # Static when known; an exported signature with an open R axis traces it symbolically
        # (XLA then compiles one program per concrete R).
        num_rollouts = rows // batch if rows is not None else tf.shape(forced_tokens)[0] // batch
        cache = model.init_cache(scene, 1, self.tokenizer.num_tokens, encoding=model.encode(scene))
        logits0, cache = model.next(tf.zeros_like(scene["agent_mask"], tf.int32), cache, 0)
        cache = cache.repeat_rollouts(num_rollouts)
        logits0 = tf.repeat(logits0, num_rollouts, axis=0)
        choice, lp = self._sample(0, logits0, seed, cache.agent_mask, forced_tokens, forced_mask)
        return StepState(tf.constant(1), choice, cache, seed), choice, lp

    def _next_step(self, state: StepState, forced_tokens, forced_mask):
        """Step state.step given everything before it: the rollout loop's body."""
        logits, cache = self.model.next(state.prev_tokens, state.cache, state.step)
        choice, lp = self._sample(
            state.step, logits, state.seed, cache.agent_mask, forced_tokens, forced_mask
        )
        return StepState(state.step + 1, choice, cache, state.seed), choice, lp

    def _start(self, scene, seed, forced_tokens, forced_mask):
        self.step_trace_count += 1
        return self._first_step(scene, seed, forced_tokens, forced_mask)

    def _step(self, state, forced_tokens, forced_mask):
        self.step_trace_count += 1
        return self._next_step(state, forced_tokens, forced_mask)

    def _rollout(self, scene, frame, seed, forced_tokens, forced_mask) -> RolloutOutput:
        self.trace_count += 1  # Python side effect: runs only while tracing
        tok = self.tokenizer
        R, T = self.num_rollouts, tok.num_tokens
        batch = scene["agent_mask"].shape[0]

        def tile(x):  # [B, ...] -> [B*R, ...], rows b * R + r (the cache's order)
            return tf.repeat(x, R, axis=0)

        forced_t = tf.transpose(tile(forced_tokens), [2, 0, 1])  # [T, B*R, A]
        forced_m = tf.transpose(tile(forced_mask), [2, 0, 1])
        state, choice0, lp0 = self._first_step(scene, seed, forced_t[0], forced_m[0])
        agent_mask = state.cache.agent_mask  # [B*R, A]

        def body(state, tokens, log_probs):
            t = state.step
            state, choice, lp = self._next_step(state, forced_t[t], forced_m[t])
            tokens = tf.tensor_scatter_nd_update(tokens, [[t]], choice[None])
            log_probs = tf.tensor_scatter_nd_update(log_probs, [[t]], lp[None])
            return state, tokens, log_probs

        pad = [[0, T - 1], [0, 0], [0, 0]]
        loop_vars = (state, tf.pad(choice0[None], pad), tf.pad(lp0[None], pad))
        _, tokens, log_probs = tf.while_loop(
            lambda state, *_: state.step < T, body, loop_vars, maximum_iterations=T - 1
        )
        tokens = tf.transpose(tokens, [1, 2, 0])  # [B*R, A, T]
        log_probs = tf.transpose(log_probs, [1, 2, 0])

        pos, vel = tok.initial_state(
            scene["agent_xy"],
            scene["agent_valid"],  # [B, A, 2]
            scene.get("agent_vel"),
        )
        heading0 = tf.cast(scene["agent_heading"][:, :, _CUR], tf.float32)
        xy, heading = tok.decode(tokens, tile(pos), tile(vel), tile(heading0))
        real = agent_mask[:, :, None]
        xy = tf.where(real[..., None], xy, tf.zeros_like(xy))
        heading = tf.where(real, heading, tf.zeros_like(heading))

        tokens, log_probs, xy, heading = (
            _unfold(x, batch) for x in (tokens, log_probs, xy, heading)
        )
        world_xy, world_heading = frames.to_world_tf(xy, heading, frame[0], frame[1])
        return RolloutOutput(
            tokens,
            log_probs,
            xy,
            heading,
            tf.cast(world_xy, tf.float32),
            tf.cast(world_heading, tf.float32),
        )


def _seed(seed) -> tf.Tensor:
    """int or [2] seed -> [2] int32."""
    seed = tf.cast(seed, tf.int32)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int32)])
    return seed


def _fold(x):  # [B, R, ...] -> [B*R, ...] (rows b * R + r)
    return tf.reshape(x, [-1] + x.shape[2:].as_list())


def _unfold(x, batch: int):  # [B*R, ...] -> [B, R, ...]
    return tf.reshape(x, [batch, -1] + x.shape[1:].as_list())
