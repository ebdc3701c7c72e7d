"""Behaviour cloning: teacher-forced cross-entropy of ground-truth action tokens (paper Eq. 1).

    L_BC = - sum_{b, i, t valid} log pi(a*_t^i | s, a*_<t) / #valid (global batch)

Ground-truth tokens come from `ActionTokenizer.encode` on the logged future, inside the step
(the data pipeline stays tokenizer-agnostic and a tokenizer change needs no re-preprocessing).
"""

from __future__ import annotations

import tensorflow as tf

import gin
from motion_sim import tokenizer as tokenizer_lib
from motion_sim.losses.loss_output import LossOutput, scene_get
from motion_sim.rl import returns as returns_lib


@gin.configurable
class BCLoss:
    """Args:
    tokenizer: the `ActionTokenizer` whose tokens the model predicts.
    label_smoothing: optional smoothing of the one-hot targets (0 in the paper).
    """

    metric_names = ("bc/loss", "bc/token_accuracy", "bc/valid_agent_steps")

    def __init__(
        self, tokenizer: tokenizer_lib.ActionTokenizer | None = None, label_smoothing: float = 0.0
    ):
        self.tokenizer = tokenizer or tokenizer_lib.ActionTokenizer()
        self.label_smoothing = float(label_smoothing)

    def targets(self, scene):
        """Ground-truth tokens [B, A, T] int32 and loss mask [B, A, T] bool."""
        # The logged velocity starts agents first seen at the current step (as the sampler does).
        tokens, token_valid = self.tokenizer.encode(
            scene_get(scene, "agent_xy"),
            scene_get(scene, "agent_valid"),
            scene_get(scene, "agent_vel"),
        )
        # Only real agents (padding rows have agent_mask False) at steps whose log exists.
        mask = token_valid & scene_get(scene, "agent_mask")[..., None]
        return tokens, mask

    def __call__(self, model, scene, training: bool = True) -> LossOutput:
        tokens, mask = self.targets(scene)
        logits = tf.cast(model.teacher_forced_logits(scene, tokens, training=training), tf.float32)
        vocab = logits.shape[-1]
        labels = tf.one_hot(tokens, vocab, dtype=tf.float32)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / vocab
        ce = tf.nn.softmax_cross_entropy_with_logits(labels, logits)  # [B, A, T]
        maskf = tf.cast(mask, tf.float32)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tokens), tf.float32)
        # Divide by the *global* number of valid agent-steps: replicas hold different numbers of
        # agents, and the per-replica mean would weight a sparse scene's steps more heavily.
        (count,) = returns_lib.all_reduce_sum([tf.reduce_sum(maskf)])
        denom = tf.maximum(count, 1.0)
        loss = tf.reduce_sum(ce * maskf) / denom
        metrics = {
            "bc/loss": loss,
            "bc/token_accuracy": tf.reduce_sum(correct * maskf) / denom,
            "bc/valid_agent_steps": tf.reduce_sum(maskf),
        }
        return LossOutput(loss=loss, metrics=metrics)
