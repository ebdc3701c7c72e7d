"""Optimizer and learning-rate schedules, configured in gin."""

from __future__ import annotations

import math

import tensorflow as tf

import gin


@gin.configurable
class WarmupDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then cosine or linear decay to `peak * final_fraction`.

    Args:
      peak: learning rate after warm-up.
      warmup_steps: steps of linear warm-up from 0 (0 = start at peak).
      decay_steps: steps (after warm-up) over which to decay; <= 0 keeps the rate constant.
      kind: "cosine", "linear" or "constant".
      final_fraction: final rate as a fraction of peak.
    """

    def __init__(
        self,
        peak: float = 1e-3,
        warmup_steps: int = 1000,
        decay_steps: int = 0,
        kind: str = "cosine",
        final_fraction: float = 0.0,
    ):
        if kind not in ("cosine", "linear", "constant"):
            raise ValueError(f"kind must be cosine, linear or constant, got {kind!r}")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)
        self.kind = kind
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = (
            tf.minimum(1.0, (step + 1.0) / max(self.warmup_steps, 1)) if self.warmup_steps else 1.0
        )
        if self.kind == "constant" or self.decay_steps <= 0:
            frac = 1.0
        else:
            p = tf.clip_by_value((step - self.warmup_steps) / self.decay_steps, 0.0, 1.0)
            shape = 0.5 * (1.0 + tf.cos(math.pi * p)) if self.kind == "cosine" else 1.0 - p
            frac = self.final_fraction + (1.0 - self.final_fraction) * shape
        return self.peak * warm * frac

    def get_config(self):
        return dict(
            peak=self.peak,
            warmup_steps=self.warmup_steps,
            decay_steps=self.decay_steps,
            kind=self.kind,
            final_fraction=self.final_fraction,
        )


@gin.configurable
def make_optimizer(
    learning_rate=gin.REQUIRED,
    weight_decay: float = 0.01,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
) -> tf.keras.optimizers.Optimizer:
    """AdamW. `learning_rate` is a float or a schedule (e.g. `@WarmupDecay()`)."""
    return tf.keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
    )
