"""REINFORCE on closed-loop rollouts (paper Alg. 1, Eq. 2-5).

    L_RL = - sum_{b, r, i, t valid} log pi(a_t^i | s, a_<t) * R_hat_t^i / #valid (global batch)

where a are the sampled tokens of R rollouts per scenario, R_hat the normalised reward-to-go
(global mean/std, or group-relative across a scenario's rollouts). Sampling happens outside the
gradient tape (the learner's `rollout_fn`, a `Sampler`); the gradient flows through one
teacher-forced pass of the model on the sampled tokens (`__call__`), so the two are separable and
the loss is testable with fixed rollouts.
"""

from __future__ import annotations

import enum

import tensorflow as tf

import gin
from motion_sim.losses.loss_output import LossOutput, replica_share, scene_get
from motion_sim.models import inputs
from motion_sim.rl import returns as returns_lib
from motion_sim.rl import rewards as rewards_lib


class Normalization(enum.StrEnum):
    """`ReinforceLoss.normalization`: how reward-to-go becomes the advantage."""

    GLOBAL = "global"  # mean/std over every valid agent-step of the global batch (the paper)
    GROUP = "group"  # relative to the other rollouts of the same scenario (needs R >= 2)
    NONE = "none"  # the raw reward-to-go (tests, ablations)


def tile_scene(scene, num_rollouts: int) -> dict:
    """The model's fields of a batched scene, each repeated R times: [B, ...] -> [B * R, ...],
    rows b * R + r (the sampler's order)."""
    return {k: tf.repeat(v, num_rollouts, axis=0) for k, v in inputs.scene_inputs(scene).items()}


@gin.configurable
class ReinforceLoss:
    """Args:
    reward_fn: `RewardFunction` (displacement + lambda * collision).
    steps_per_token: 10 Hz steps per action token (5 for the paper's 2 Hz tokens).
    gamma: discount of the reward-to-go (0.95 in the paper).
    normalization: "global" (mean/std over every valid agent-step of the global batch, the
      paper), "group" (per scenario, agent and step across its rollouts), or "none".
    """

    metric_names = (
        "rl/loss",
        "rl/reward",
        "rl/return_mean",
        "rl/return_std",
        "rl/collision_rate",
        "rl/collision_step_rate",
        "rl/ade",
        "rl/entropy",
    )

    def __init__(
        self,
        reward_fn: rewards_lib.RewardFunction | None = None,
        steps_per_token: int = 5,
        gamma: float = 0.95,
        normalization: str = "global",
    ):
        try:
            normalization = Normalization(normalization)
        except ValueError:
            raise ValueError(
                f"normalization must be one of {[n.value for n in Normalization]}, "
                f"got {normalization!r}"
            ) from None
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.reward_fn = reward_fn or rewards_lib.RewardFunction()
        self.steps_per_token = int(steps_per_token)
        self.gamma = float(gamma)
        self.normalization = normalization

    def __call__(self, model, scene, rollout, training: bool = True) -> LossOutput:
        """Loss of fixed rollouts.

        Args:
          model: has `log_probs(scene, tokens) -> [N, A, T]`.
          scene: batched scene [B, ...].
          rollout: sampler output with tokens [B, R, A, T], log_probs [B, R, A, T] (behaviour
            policy, for the entropy estimate), xy [B, R, A, 80, 2], heading [B, R, A, 80].
        """
        tokens = tf.stop_gradient(rollout.tokens)
        batch, num_rollouts, num_agents, num_tokens = tokens.shape
        if self.normalization is Normalization.GROUP and num_rollouts < 2:
            raise ValueError(
                "ReinforceLoss.normalization='group' compares a scenario's rollouts "
                f"with each other: needs Sampler.num_rollouts >= 2, got {num_rollouts}"
            )
        rew = self.reward_fn(
            tf.stop_gradient(rollout.xy),
            tf.stop_gradient(rollout.heading),
            scene,
            self.steps_per_token,
        )
        valid = rew.valid  # [B, R, A, T]
        g = returns_lib.reward_to_go(rew.reward, self.gamma)
        raw = returns_lib.global_stats(g, valid)
        if self.normalization is Normalization.GLOBAL:
            adv, _ = returns_lib.normalize_global(g, valid)
        elif self.normalization is Normalization.GROUP:
            adv = returns_lib.normalize_group(g, valid, rollout_axis=1)
        else:
            adv = tf.where(valid, g, tf.zeros_like(g))
        adv = tf.stop_gradient(adv)

        flat_tokens = tf.reshape(tokens, [-1, num_agents, num_tokens])  # [B*R, A, T]
        logp = model.log_probs(tile_scene(scene, num_rollouts), flat_tokens, training=training)
        logp = tf.reshape(tf.cast(logp, tf.float32), tf.shape(tokens))
        maskf = tf.cast(valid, tf.float32)
        (count,) = returns_lib.all_reduce_sum([tf.reduce_sum(maskf)])
        denom = tf.maximum(count, 1.0)  # global number of valid agent-steps (Eq. 5's mean)
        loss = -tf.reduce_sum(logp * adv * maskf) / denom

        # Summaries. Shares of global values: sums over replicas give the global figure.
        agent_mask = tf.cast(scene_get(scene, "agent_mask"), tf.float32)[:, None, :]  # [B, 1, A]
        dmask = tf.cast(rew.displacement_valid, tf.float32)
        d_count, a_count = returns_lib.all_reduce_sum(
            [tf.reduce_sum(dmask), tf.reduce_sum(agent_mask) * float(num_rollouts)]
        )
        collided_agent = tf.reduce_max(rew.collision, axis=-1) * agent_mask  # [B, R, A]
        metrics = {
            "rl/loss": loss,
            "rl/reward": tf.reduce_sum(rew.reward * maskf) / denom,
            "rl/return_mean": replica_share(raw.mean),
            "rl/return_std": replica_share(raw.std),
            "rl/collision_rate": tf.reduce_sum(collided_agent) / tf.maximum(a_count, 1.0),
            "rl/collision_step_rate": tf.reduce_sum(rew.collision * maskf) / denom,
            "rl/ade": tf.reduce_sum(rew.displacement * dmask) / tf.maximum(d_count, 1.0),
            # Monte-Carlo entropy estimate E_a~pi[-log pi(a)] from the behaviour log-probs.
            "rl/entropy": -tf.reduce_sum(tf.cast(rollout.log_probs, tf.float32) * maskf) / denom,
        }
        return LossOutput(loss=loss, metrics=metrics)
