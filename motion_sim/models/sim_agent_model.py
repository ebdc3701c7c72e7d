"""`SimAgentModel`: the policy pi(a_t | o, a_<t) over joint action tokens of all agents."""

from __future__ import annotations

import enum

import tensorflow as tf

import gin
from motion_sim.models import inputs
from motion_sim.models.decode_cache import DecodeCache
from motion_sim.models.motion_decoder import MotionDecoder
from motion_sim.models.scene_encoder import SceneEncoder
from motion_sim.models.wayformer_encoder import WayformerSceneEncoder


class EncoderKind(str, enum.Enum):
    """Scene encoders `SimAgentModel.encoder` selects."""

    AGENT_TOKENS = "agent_tokens"  # `SceneEncoder`: one token per agent, current light state
    WAYFORMER = "wayformer"  # `WayformerSceneEncoder`: per-step tokens, latent queries


@gin.configurable
@tf.keras.utils.register_keras_serializable(package="motion_sim")
class SimAgentModel(tf.keras.Model):
    """Scene encoder + block-causal action decoder (MotionLM, scene-centric, all agents).

    `scene` arguments are `Scene` NamedTuples or dicts whose leaves have a leading batch axis
    (as from tf.data); only `inputs.MODEL_SCENE_FIELDS` are read. Tokens are [B, A, T] int.
    Logits and log-probabilities are float32 under any mixed-precision policy. Nothing is masked
    on output: callers mask with token_valid & agent_mask.

    Args:
      num_encoder_layers, num_decoder_layers: transformer depths.
      hidden: model width D; num_heads: heads (D must divide); ffn_dim: FFN width.
      dropout: dropout rate (training only); activation: hidden activation.
      encoder_mlp_width: hidden width of the token encoders (agent history, polylines, traffic
        lights) and of the decoder's agent identity MLP.
      vocab_size: action tokens (169 = 13 x 13 acceleration grid).
      max_steps: most token steps decoded (80 covers 10 Hz; 2 Hz uses 16).
      encoder: an `EncoderKind` value: "agent_tokens" (default) or "wayformer" (the paper's
        encoder: per-step agent / light tokens fused early, `num_latents` latent queries).
      num_latents: K latent tokens of the "wayformer" encoder (unused otherwise).
    """

    def __init__(
        self,
        num_encoder_layers: int = 4,
        num_decoder_layers: int = 4,
        hidden: int = 256,
        num_heads: int = 4,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
        activation: str = "relu",
        encoder_mlp_width: int = 256,
        vocab_size: int = 169,
        max_steps: int = 80,
        encoder: str = EncoderKind.AGENT_TOKENS.value,
        num_latents: int = 64,
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)  # scene positions must reach the encoders in float32
        super().__init__(**kwargs)
        if hidden % num_heads:
            raise ValueError(f"hidden={hidden} must be divisible by num_heads={num_heads}")
        self.hparams = dict(
            num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers,
            hidden=hidden,
            num_heads=num_heads,
            ffn_dim=ffn_dim,
            dropout=dropout,
            activation=activation,
            encoder_mlp_width=encoder_mlp_width,
            vocab_size=vocab_size,
            max_steps=max_steps,
            encoder=EncoderKind(encoder).value,
            num_latents=num_latents,
        )
        self.vocab_size = vocab_size
        self.max_steps = max_steps
        if EncoderKind(encoder) is EncoderKind.WAYFORMER:
            self.encoder = WayformerSceneEncoder(
                hidden,
                num_encoder_layers,
                num_heads,
                ffn_dim,
                encoder_mlp_width,
                num_latents,
                dropout,
                activation,
                name="wayformer_encoder",
            )
        else:
            self.encoder = SceneEncoder(
                hidden,
                num_encoder_layers,
                num_heads,
                ffn_dim,
                encoder_mlp_width,
                dropout,
                activation,
                name="scene_encoder",
            )
        self.decoder = MotionDecoder(
            vocab_size,
            max_steps,
            hidden,
            num_decoder_layers,
            num_heads,
            ffn_dim,
            encoder_mlp_width,
            dropout,
            activation,
            name="decoder",
        )
        # Build every weight now: the cached step calls sublayers outside `call`, and parameter
        # counts / checkpoints should not depend on which method ran first.
        dummy = inputs.dummy_scene_inputs(batch=1, num_agents=2)
        self(dummy, tf.zeros([1, 2, 1], tf.int32))

    # ------------------------------------------------------------- encoder
    def encode(self, scene, training=None):
        """scene -> (scene_emb [B, N, D] compute dtype, scene_mask [B, N] bool)."""
        return self.encoder(inputs.scene_inputs(scene), training=training)

    # ------------------------------------------------------------ teacher forced
    def call(self, scene, tokens, training=None):
        """Teacher-forced logits [B, A, T, vocab_size] float32 (see `teacher_forced_logits`)."""
        scene = inputs.scene_inputs(scene)
        scene_emb, scene_mask = self.encoder(scene, training=training)
        return self.decoder(
            tokens,
            self.decoder.agent_embedding(scene),
            scene["agent_mask"],
            scene_emb,
            scene_mask,
            training=training,
        )

    def teacher_forced_logits(self, scene, tokens, training=None):
        """Logits of token t of every agent given the scene and all agents' tokens < t.

        Args: scene (batched), tokens [B, A, T] int. Returns [B, A, T, vocab_size] float32.
        """
        return self(inputs.scene_inputs(scene), tokens, training=training)

    def log_probs(self, scene, tokens, training=None):
        """log pi(tokens[b, a, t] | scene, tokens[:, :, <t]) as [B, A, T] float32.

        For BC on logged tokens and for REINFORCE on sampled ones; values everywhere (padded
        agents / invalid steps included) -- the caller masks with token_valid & agent_mask.
        """
        logits = self.teacher_forced_logits(scene, tokens, training=training)
        logp = tf.nn.log_softmax(logits, axis=-1)
        return tf.gather(logp, tf.cast(tokens, tf.int32), axis=-1, batch_dims=3)

    # -------------------------------------------------------------- cached
    def init_cache(self, scene, num_rollouts: int, num_steps: int, encoding=None) -> DecodeCache:
        """Empty decoding state for `num_rollouts` rollouts of each scene (rows b * R + r).

        Args:
          scene: batched scene. num_rollouts: R. num_steps: T token steps to decode.
          encoding: optional (scene_emb, scene_mask) from `encode`, to avoid re-encoding.
        """
        scene = inputs.scene_inputs(scene)
        scene_emb, scene_mask = encoding if encoding is not None else self.encoder(scene)
        return self.decoder.init_cache(
            self.decoder.agent_embedding(scene),
            scene["agent_mask"],
            scene_emb,
            scene_mask,
            num_rollouts,
            num_steps,
        )

    def next(self, tokens_prev, cache: DecodeCache, step):
        """One cached decoding step.

        Args:
          tokens_prev: [B*R, A] int tokens chosen at step - 1 (anything at step 0).
          cache: `DecodeCache` from `init_cache` / the previous `next`.
          step: scalar int t.
        Returns: (logits [B*R, A, vocab_size] float32 of step t, updated cache). Equal to
          `teacher_forced_logits(...)[:, :, t]` on the same tokens.
        """
        return self.decoder.step(tokens_prev, cache, step)

    def get_config(self):
        return dict(self.hparams, name=self.name)

    @classmethod
    def from_config(cls, config):
        return cls(**config)
