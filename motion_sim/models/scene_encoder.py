"""Scene tokens (agents, map polylines, traffic lights) -> transformer encoder -> embedding."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.layers import masks
from motion_sim.layers.agent_history_encoder import AgentHistoryEncoder
from motion_sim.layers.encoder_block import EncoderBlock
from motion_sim.layers.polyline_encoder import PolylineEncoder
from motion_sim.layers.traffic_light_encoder import TrafficLightEncoder


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class SceneEncoder(tf.keras.layers.Layer):
    """Scene -> (embedding [B, N, D], mask [B, N]), N = A + P + L tokens in that order.

    Each token kind has its own encoder plus a learned kind embedding; then `num_layers`
    pre-norm self-attention blocks over all tokens with padded tokens masked as keys, and a
    final LayerNorm. Padded tokens' outputs are meaningless and masked by the decoder.

    Args:
      hidden: D. num_layers, num_heads, ffn_dim, dropout, activation: the transformer.
      mlp_width: hidden width of the per-kind token encoders.
    """

    def __init__(
        self,
        hidden: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        mlp_width: int,
        dropout: float = 0.0,
        activation: str = "relu",
        **kwargs,
    ):
        # Raw scene inputs stay float32: autocasting positions of ~100 m to bfloat16 under
        # mixed precision would round them to ~0.5 m. The MLPs cast normalised features.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.hidden, self.num_layers, self.num_heads = hidden, num_layers, num_heads
        self.ffn_dim, self.mlp_width = ffn_dim, mlp_width
        self.dropout, self.activation = dropout, activation
        self.agent_encoder = AgentHistoryEncoder(
            hidden, mlp_width, 2, activation, name="agent_history"
        )
        self.polyline_encoder = PolylineEncoder(hidden, mlp_width, activation, name="polylines")
        self.traffic_light_encoder = TrafficLightEncoder(
            hidden, mlp_width, activation, name="traffic_lights"
        )
        self.kind_embedding = tf.keras.layers.Embedding(3, hidden, name="kind_embedding")
        self.blocks = [
            EncoderBlock(
                num_heads, hidden // num_heads, ffn_dim, dropout, activation, name=f"block_{i}"
            )
            for i in range(num_layers)
        ]
        self.final_norm = tf.keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")

    def call(self, scene, training=None):
        """scene: dict of model inputs (`inputs.scene_inputs`) -> (emb [B, N, D], mask [B, N])."""
        agents = self.agent_encoder(scene)
        agent_mask = tf.cast(scene["agent_mask"], tf.bool)
        polylines, map_mask = self.polyline_encoder(scene)
        lights, tl_mask = self.traffic_light_encoder(scene)
        kinds = self.kind_embedding(tf.constant([0, 1, 2]))
        x = tf.concat([agents + kinds[0], polylines + kinds[1], lights + kinds[2]], axis=1)
        mask = tf.concat([agent_mask, map_mask, tl_mask], axis=1)
        bias = masks.key_padding_bias(mask)  # padded tokens are never attended to
        for block in self.blocks:
            x = block(x, bias, training=training)
        return self.final_norm(x), mask

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden=self.hidden,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            ffn_dim=self.ffn_dim,
            mlp_width=self.mlp_width,
            dropout=self.dropout,
            activation=self.activation,
        )
        return config
