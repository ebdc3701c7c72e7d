"""State of cached autoregressive decoding (a `tf.nest` structure for `tf.while_loop`)."""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class DecodeCache(NamedTuple):
    """Everything `SimAgentModel.next` needs besides the previous tokens.

    B scenes, R rollouts per scene (rows b * R + r), A agents, T token steps, N scene tokens,
    L decoder layers, H heads of width d, D model width. Shapes never change while decoding.

    Attributes:
      self_kv: L-tuple of [B*R, 2, H, T, A, d + 1] compute-dtype self-attention keys/values,
        folded (`attention.fold_keys` / `fold_values`: keys carry their bias, values a 1);
        step t's slot is written by step t (later slots are masked until then).
      scene_kv: L-tuple of [B, 2, H, N, d + 1] folded cross-attention keys/values (padded
        scene tokens masked by their key bias), computed once per scene and shared by its R
        rollouts.
      agent_embedding: [B*R, A, D] agent identity embeddings.
      agent_mask: [B*R, A] bool, real agents (padded agents are masked as keys).
    """

    self_kv: tuple
    scene_kv: tuple
    agent_embedding: tf.Tensor
    agent_mask: tf.Tensor

    def repeat_rollouts(self, num_rollouts: int) -> "DecodeCache":
        """A cache of one rollout per scene ([B, ...] rows) -> R copies per scene (rows b * R + r).

        `num_rollouts` may be a scalar int tensor (an exported step signature's open R axis).
        Lets the sampler decode step 0, whose input (START) is the same for every rollout,
        once per scene and copy its keys/values, rather than R times.
        """
        if isinstance(num_rollouts, int) and num_rollouts == 1:
            return self

        def tile(x):
            return tf.repeat(x, num_rollouts, axis=0)

        return self._replace(
            self_kv=tuple(tile(kv) for kv in self.self_kv),
            agent_embedding=tile(self.agent_embedding),
            agent_mask=tile(self.agent_mask),
        )
