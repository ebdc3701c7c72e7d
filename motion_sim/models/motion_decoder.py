"""Autoregressive joint-action decoder: teacher-forced pass and cached single step."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.layers import features, masks
from motion_sim.layers.decoder_block import DecoderBlock
from motion_sim.layers.mlp import MLP
from motion_sim.models.decode_cache import DecodeCache

_CUR = datatypes.CURRENT_INDEX

# Query chunks of the teacher-forced block-causal self-attention: chunk i reads only the key
# steps it can see, so C chunks do ~(C + 1) / 2C of the full [T*A, T*A] attention work. 4 is
# the measured optimum for T = 16 on CPU (more chunks: smaller, less efficient matmuls).
_SELF_ATTENTION_CHUNKS = 4


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class MotionDecoder(tf.keras.layers.Layer):
    """Block-causal transformer decoder over [T steps x A agents] action tokens.

    Input of (t, a) = embedding(token of agent a at step t-1, or START at t = 0)
                      + step embedding(t) + identity embedding(a).
    The identity embedding is an MLP of the agent's current state (position, heading, velocity,
    size, type): it tells the decoder which scene agent a sequence slot is, and is the only
    per-agent signal besides the tokens. Self-attention is block-causal (`masks`), then
    cross-attention to the scene embedding, FFN; a float32 head gives `vocab_size` logits.

    Args:
      vocab_size: action tokens (START = vocab_size is the extra input-only token).
      max_steps: largest T (80 = 10 Hz over 8 s; 2 Hz uses 16).
      hidden, num_layers, num_heads, ffn_dim, dropout, activation: the transformer.
      mlp_width: hidden width of the identity MLP.
    """

    def __init__(
        self,
        vocab_size: int,
        max_steps: int,
        hidden: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        mlp_width: int,
        dropout: float = 0.0,
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size, self.max_steps, self.hidden = vocab_size, max_steps, hidden
        self.num_layers, self.num_heads, self.ffn_dim = num_layers, num_heads, ffn_dim
        self.mlp_width, self.dropout, self.activation = mlp_width, dropout, activation
        self.key_dim = hidden // num_heads
        self.start_token = vocab_size
        self.token_embedding = tf.keras.layers.Embedding(vocab_size + 1, hidden, name="tokens")
        self.step_embedding = tf.keras.layers.Embedding(max_steps, hidden, name="steps")
        self.identity_mlp = MLP([mlp_width, hidden], activation, name="identity")
        self.blocks = [
            DecoderBlock(num_heads, self.key_dim, ffn_dim, dropout, activation, name=f"block_{i}")
            for i in range(num_layers)
        ]
        self.final_norm = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        # float32 logits under any mixed-precision policy: softmax / sampling stay exact.
        self.head = tf.keras.layers.Dense(vocab_size, dtype="float32", name="logits")

    # ------------------------------------------------------------------ inputs
    def agent_embedding(self, scene) -> tf.Tensor:
        """[B, A, D] identity embedding from the agents' state at CURRENT_INDEX."""
        state = features.agent_step_features(
            scene["agent_xy"][:, :, _CUR],
            scene["agent_heading"][:, :, _CUR],
            scene["agent_vel"][:, :, _CUR],
            scene["agent_valid"][:, :, _CUR],
        )
        static = features.agent_static_features(scene["agent_size"], scene["agent_type"])
        return self.identity_mlp(tf.concat([state, static], axis=-1))

    def _check_steps(self, num_steps: int):
        if num_steps > self.max_steps:
            raise ValueError(f"{num_steps} token steps > max_steps={self.max_steps} of the model")

    # ----------------------------------------------------------- full pass
    def call(self, tokens, agent_embedding, agent_mask, scene_emb, scene_mask, training=None):
        """Teacher-forced logits.

        Args:
          tokens: [B, A, T] int action tokens (step t's input is token t-1).
          agent_embedding: [B, A, D]; agent_mask: [B, A] bool.
          scene_emb: [B, N, D]; scene_mask: [B, N] bool.
        Returns: [B, A, T, vocab_size] float32 logits of token t given tokens < t.
        """
        tokens = tf.cast(tokens, tf.int32)
        num_steps, num_agents = tokens.shape[2], tokens.shape[1]
        self._check_steps(num_steps)
        batch = tf.shape(tokens)[0]
        prev = tf.concat(
            [tf.fill([batch, num_agents, 1], self.start_token), tokens[:, :, :-1]], axis=2
        )
        x = self.token_embedding(tf.transpose(prev, [0, 2, 1]))  # [B, T, A, D]
        x = x + self.step_embedding(tf.range(num_steps))[None, :, None]
        x = x + tf.cast(agent_embedding, x.dtype)[:, None]
        x = tf.reshape(x, [batch, num_steps * num_agents, self.hidden])  # p = t * A + a
        self_bias = masks.block_causal_chunk_biases(
            tf.cast(agent_mask, tf.bool), num_steps, _SELF_ATTENTION_CHUNKS
        )
        scene_bias = masks.key_padding_bias(tf.cast(scene_mask, tf.bool))
        for block in self.blocks:
            x = block(x, self_bias, scene_emb, scene_bias, training=training)
        logits = self.head(self.final_norm(x))  # [B, T*A, V]
        logits = tf.reshape(logits, [batch, num_steps, num_agents, self.vocab_size])
        return tf.transpose(logits, [0, 2, 1, 3])

    # -------------------------------------------------------------- cached
    def init_cache(
        self, agent_embedding, agent_mask, scene_emb, scene_mask, num_rollouts: int, num_steps: int
    ) -> DecodeCache:
        """Empty KV caches for R rollouts of each of B scenes; scene keys/values computed once.

        Args: agent_embedding [B, A, D], agent_mask [B, A], scene_emb [B, N, D],
          scene_mask [B, N], num_rollouts R, num_steps T.
        """
        self._check_steps(num_steps)
        num_agents = agent_embedding.shape[1]
        batch = tf.shape(agent_embedding)[0]

        scene_kv = tuple(block.scene_kv(scene_emb, scene_mask) for block in self.blocks)
        dtype = scene_kv[0].dtype
        one = DecodeCache(  # one rollout per scene, then R copies
            self_kv=tuple(
                block.empty_cache(batch, num_steps, num_agents, dtype) for block in self.blocks
            ),
            scene_kv=scene_kv,
            agent_embedding=tf.cast(agent_embedding, dtype),
            agent_mask=tf.cast(agent_mask, tf.bool),
        )
        return one.repeat_rollouts(num_rollouts)

    def step(self, tokens_prev, cache: DecodeCache, step):
        """One decoding step for every agent of every rollout.

        Args:
          tokens_prev: [B*R, A] int tokens of step `step` - 1 (ignored at step 0: START).
          cache: `DecodeCache`; step: scalar int32 t.
        Returns: (logits [B*R, A, vocab_size] float32 for step t, updated cache).
        """
        step = tf.cast(step, tf.int32)
        tokens_prev = tf.cast(tokens_prev, tf.int32)
        tokens_in = tf.where(
            step == 0, tf.fill(tf.shape(tokens_prev), self.start_token), tokens_prev
        )
        x = self.token_embedding(tokens_in) + self.step_embedding(step)
        x = x + tf.cast(cache.agent_embedding, x.dtype)
        key_bias = masks.mask_to_bias(cache.agent_mask)  # this step's keys: padded agents masked
        new_kv = []
        for block, kv, scene_kv in zip(self.blocks, cache.self_kv, cache.scene_kv):
            x, kv = block.step(x, step, kv, key_bias, scene_kv)
            new_kv.append(kv)
        logits = self.head(self.final_norm(x))
        return logits, cache._replace(self_kv=tuple(new_kv))

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            max_steps=self.max_steps,
            hidden=self.hidden,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            ffn_dim=self.ffn_dim,
            mlp_width=self.mlp_width,
            dropout=self.dropout,
            activation=self.activation,
        )
        return config
