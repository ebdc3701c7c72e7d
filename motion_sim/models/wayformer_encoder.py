"""Wayformer-style scene encoder: per-step agent and light tokens, early fusion, latent queries."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.layers import masks
from motion_sim.layers.agent_step_encoder import AgentStepEncoder
from motion_sim.layers.encoder_block import EncoderBlock
from motion_sim.layers.latent_query_block import LatentQueryBlock
from motion_sim.layers.polyline_encoder import PolylineEncoder
from motion_sim.layers.traffic_light_history_encoder import TrafficLightHistoryEncoder


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class WayformerSceneEncoder(tf.keras.layers.Layer):
    """Scene -> (embedding [B, K, D], mask [B, K] all True): K = num_latents latent tokens.

    The paper's encoder (Peng et al. Sec. 3 build on Wayformer, Nayakanti et al. 2023):
    every modality is tokenised with its time axis kept -- one token per (agent, history step)
    and per (traffic light, history step), one per map polyline -- and fused *early*: all
    A * 11 + P + 11 * L tokens (2,016 for a full scene) go into one attention together, each
    with a learned modality embedding. A latent-query block reads them into K learned latents
    (`LatentQueryBlock`), `num_layers` self-attention blocks refine the latents, and the
    decoder cross-attends to the K latents only. Same interface as `SceneEncoder`, so
    `MotionDecoder` and its KV cache work unchanged.

    Args:
      hidden: D. num_layers: latent self-attention blocks; num_heads, ffn_dim, dropout,
        activation: the transformer. mlp_width: width of the per-modality token MLPs.
      num_latents: K.
    """

    def __init__(
        self,
        hidden: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        mlp_width: int,
        num_latents: int = 64,
        dropout: float = 0.0,
        activation: str = "relu",
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)  # raw positions stay float32 (see SceneEncoder)
        super().__init__(**kwargs)
        self.hidden, self.num_layers, self.num_heads = hidden, num_layers, num_heads
        self.ffn_dim, self.mlp_width, self.num_latents = ffn_dim, mlp_width, num_latents
        self.dropout, self.activation = dropout, activation
        self.agent_encoder = AgentStepEncoder(hidden, mlp_width, 2, activation, name="agent_steps")
        self.polyline_encoder = PolylineEncoder(hidden, mlp_width, activation, name="polylines")
        self.traffic_light_encoder = TrafficLightHistoryEncoder(
            hidden, mlp_width, activation, name="traffic_light_steps"
        )
        self.kind_embedding = tf.keras.layers.Embedding(3, hidden, name="kind_embedding")
        self.latent_query = LatentQueryBlock(
            num_latents,
            num_heads,
            hidden // num_heads,
            ffn_dim,
            dropout,
            activation,
            name="latent_query",
        )
        self.blocks = [
            EncoderBlock(
                num_heads, hidden // num_heads, ffn_dim, dropout, activation, name=f"block_{i}"
            )
            for i in range(num_layers)
        ]
        self.final_norm = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")

    def call(self, scene, training=None):
        """scene: dict of model inputs (`inputs.scene_inputs`) -> (emb [B, K, D], mask [B, K])."""
        agents, agent_mask = self.agent_encoder(scene)
        polylines, map_mask = self.polyline_encoder(scene)
        lights, tl_mask = self.traffic_light_encoder(scene)
        kinds = self.kind_embedding(tf.constant([0, 1, 2]))
        tokens = tf.concat([agents + kinds[0], polylines + kinds[1], lights + kinds[2]], axis=1)
        mask = tf.concat([agent_mask, map_mask, tl_mask], axis=1)
        x = self.latent_query(tokens, masks.key_padding_bias(mask), training=training)
        no_padding = tf.zeros([1, 1, 1, self.num_latents], tf.float32)  # latents always valid
        for block in self.blocks:
            x = block(x, no_padding, training=training)
        return self.final_norm(x), tf.ones(tf.shape(x)[:2], tf.bool)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden=self.hidden,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            ffn_dim=self.ffn_dim,
            mlp_width=self.mlp_width,
            num_latents=self.num_latents,
            dropout=self.dropout,
            activation=self.activation,
        )
        return config
