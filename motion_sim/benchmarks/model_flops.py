"""Analytic matmul FLOPs of `SimAgentModel`: as executed (padding included) and useful work.

Two counts of the same network, 2 FLOPs per multiply-add, matmuls and attention products only
(the benchmarks' roofline is a matmul, so only matmul work is comparable):

- **executed** (`useful=False`): what the compiled program runs on the padded shapes -- every
  agent slot, polyline and light slot, attention over the key prefix a step actually reads
  (the cached step's bucket of the static cache, the teacher-forced pass's query chunks), and
  the cached attention's folded bias / denominator column (`attention.attend_folded`). This is
  what `benchmarks.flop_count` counts on the traced graph; `tests/benchmarks` checks the two
  agree on the tiny model.
- **useful** (`useful=True`): the same network run on the scene's real entities only -- valid
  agents (`agent_mask`) at every token step, valid map polylines (all their points) and valid
  traffic lights -- with attention over exactly the keys the masks let through (each query's
  block-causal prefix of valid agents; the scene's valid tokens) at the head width d. Padding,
  masked keys inside a bucket or chunk and the folded columns are left out.

useful / executed is the share of the hardware's work that is the model's work on the scene.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import tensorflow as tf

from motion_sim.benchmarks import flop_count
from motion_sim.data import datatypes
from motion_sim.layers import decoder_block
from motion_sim.models import motion_decoder

# Input feature widths (`layers.features`): 11 history steps x 7 + 8 static; 7 + 8 for the
# decoder's identity MLP; 5 per polyline point; 2 per traffic light.
_AGENT_HISTORY_IN = datatypes.NUM_HISTORY_STEPS * 7 + 8
_IDENTITY_IN = 7 + 8
_POINT_IN = 5
_LIGHT_IN = 2


def mm(m: float, k: float, n: float) -> float:
    """FLOPs of an [m, k] x [k, n] matmul."""
    return 2.0 * m * k * n


@dataclasses.dataclass(frozen=True)
class SceneCounts:
    """Entities of one scene the model processes.

    Attributes:
      agents: agent slots (executed: the padded A; useful: valid agents).
      polylines: map polyline slots P (useful: valid polylines).
      points: points per polyline L (20).
      lights: traffic light slots (useful: valid at the current step).
    """

    agents: int
    polylines: int
    points: int
    lights: int

    @property
    def tokens(self) -> int:
        """Scene tokens N = agents + polylines + lights."""
        return self.agents + self.polylines + self.lights


def scene_counts(scene: dict, useful: bool) -> list[SceneCounts]:
    """Per-scene `SceneCounts` of a batched scene dict (numpy or tensors, leading axis B)."""
    agent_mask = np.asarray(scene["agent_mask"]).astype(bool)
    map_valid = np.asarray(scene["map_valid"]).astype(bool)
    batch, num_agents = agent_mask.shape
    _, num_polylines, num_points = map_valid.shape
    num_lights = np.asarray(scene["tl_valid"]).shape[-1]
    if not useful:
        return [SceneCounts(num_agents, num_polylines, num_points, num_lights)] * batch
    # The encoders' own validity rules (`PolylineEncoder`, `TrafficLightEncoder`).
    polylines = map_valid.any(-1) & (np.asarray(scene["map_type"]) != int(datatypes.MapType.PAD))
    lights = np.asarray(scene["tl_valid"])[:, datatypes.CURRENT_INDEX].astype(bool)
    return [
        SceneCounts(
            int(agent_mask[b].sum()), int(polylines[b].sum()), num_points, int(lights[b].sum())
        )
        for b in range(batch)
    ]


@dataclasses.dataclass(frozen=True)
class ModelDims:
    """Widths of a `SimAgentModel` (`from_model`)."""

    hidden: int
    ffn: int
    mlp_width: int
    heads: int
    vocab: int
    encoder_layers: int
    decoder_layers: int

    @classmethod
    def from_model(cls, model) -> ModelDims:
        hp = model.hparams
        return cls(
            hp["hidden"],
            hp["ffn_dim"],
            hp["encoder_mlp_width"],
            hp["num_heads"],
            hp["vocab_size"],
            hp["num_encoder_layers"],
            hp["num_decoder_layers"],
        )

    @property
    def key_dim(self) -> int:
        return self.hidden // self.heads


def token_encoder_flops(dims: ModelDims, c: SceneCounts) -> tuple[float, float]:
    """(all, first layers) FLOPs of the per-kind token encoders of one scene. The first layers
    read input features, so training computes only their weight gradient."""
    W, D = dims.mlp_width, dims.hidden
    pts = c.polylines * c.points
    first = mm(c.agents, _AGENT_HISTORY_IN, W) + mm(pts, _POINT_IN, W) + mm(c.lights, _LIGHT_IN, W)
    rest = (
        mm(c.agents, W, W)
        + mm(c.agents, W, D)  # agent history MLP (2 hidden layers)
        + mm(pts, W, W)
        + mm(pts, 2 * W, W)
        + mm(pts, W, D)  # PointNet: point, polyline MLPs
        + mm(c.lights, W, D)
    )
    return first + rest, first


def scene_encoder_flops(dims: ModelDims, c: SceneCounts) -> tuple[float, float]:
    """(all, first layers) FLOPs of encoding one scene: token encoders + transformer layers."""
    tokens, first = token_encoder_flops(dims, c)
    D, F, N = dims.hidden, dims.ffn, c.tokens
    layers = dims.encoder_layers * (4 * mm(N, D, D) + 2 * mm(N, N, D) + 2 * mm(N, D, F))
    return tokens + layers, first


def identity_flops(dims: ModelDims, agents: int) -> tuple[float, float]:
    """(all, first layer) FLOPs of the decoder's agent identity MLP."""
    first = mm(agents, _IDENTITY_IN, dims.mlp_width)
    return first + mm(agents, dims.mlp_width, dims.hidden), first


def decoder_rows_flops(
    dims: ModelDims, rows: float, scene_tokens: float, attention_width: int
) -> float:
    """Decoder FLOPs that scale with its query rows, all layers + logits: self-attention q, k,
    v and output projections, cross-attention query and output projections, cross-attention
    scores and values over `scene_tokens` keys (`attention_width` = heads x per-head width),
    FFN."""
    D, F = dims.hidden, dims.ffn
    per_layer = (
        6 * mm(rows, D, D) + 2 * mm(rows, scene_tokens, attention_width) + 2 * mm(rows, D, F)
    )
    return dims.decoder_layers * per_layer + mm(rows, D, dims.vocab)


def _bucket_keys(T: int, agents: int) -> list[int]:
    """Self-attention keys the cached step t reads: its bucket's prefix of the static cache."""
    buckets = min(T, decoder_block._MAX_PREFIX_BUCKETS)
    bucket_steps = -(-T // buckets)
    return [min((t // bucket_steps + 1) * bucket_steps, T) * agents for t in range(T)]


def rollout_flops(
    dims: ModelDims, scenes: list[SceneCounts], rollouts: int, steps: int, useful: bool
) -> float:
    """FLOPs of one compiled `Sampler` call on these scenes (R rollouts, T token steps).

    Executed: step 0 (input START, the same for every rollout) decodes once per scene, steps
    1.. once per rollout; the cached attention reads its bucket's prefix with keys and values
    one column wider (folded). Useful: every rollout's step t attends to the t + 1 steps of
    valid agents so far, head width d (decoding step 0 once is then the whole saving).
    """
    total = 0.0
    ld, D, H = dims.decoder_layers, dims.hidden, dims.heads
    width = D if useful else H * (dims.key_dim + 1)
    for c in scenes:
        A, T = c.agents, steps
        rows = [A] + [rollouts * A] * (T - 1)
        keys = [(t + 1) * A for t in range(T)] if useful else _bucket_keys(T, A)
        # Scene keys/values once per scene (the cache), identity MLP.
        total += scene_encoder_flops(dims, c)[0] + ld * 2 * mm(c.tokens, D, D)
        total += identity_flops(dims, A)[0]
        total += sum(decoder_rows_flops(dims, q, c.tokens, width) for q in rows)
        total += sum(ld * 2 * mm(q, width, k) for q, k in zip(rows, keys))  # scores + values
    return total


def teacher_forced_flops(
    dims: ModelDims, c: SceneCounts, steps: int, useful: bool
) -> tuple[float, float]:
    """(all, first layers) forward FLOPs of one scene's teacher-forced pass (`model(scene,
    tokens)`). Executed: block-causal self-attention in query chunks
    (`motion_decoder._SELF_ATTENTION_CHUNKS`), each over the keys of the steps it can see;
    useful: query step t over the t + 1 steps of valid agents."""
    A, T, D = c.agents, steps, dims.hidden
    if useful:
        pairs = sum(A * (t + 1) * A for t in range(T))
    else:
        chunks = max(1, min(motion_decoder._SELF_ATTENTION_CHUNKS, T))
        bounds = [round(i * T / chunks) for i in range(chunks + 1)]
        pairs = sum((e - s) * A * e * A for s, e in itertools.pairwise(bounds))
    enc, enc_first = scene_encoder_flops(dims, c)
    ident, ident_first = identity_flops(dims, A)
    dec = decoder_rows_flops(dims, T * A, c.tokens, D) + dims.decoder_layers * 2 * mm(
        c.tokens, D, D
    )  # scene keys/values
    attn = dims.decoder_layers * 2 * mm(pairs, D, 1)  # scores + values, all heads
    return enc + ident + dec + attn, enc_first + ident_first


def bc_step_flops(dims: ModelDims, scenes: list[SceneCounts], steps: int, useful: bool) -> float:
    """FLOPs of one BC optimizer step: teacher-forced forward + backward. The backward of a
    matmul is two matmuls of its size (input and weight gradients), except for the layers that
    read input features, whose input gradient is not computed."""
    total = 0.0
    for c in scenes:
        forward, first = teacher_forced_flops(dims, c, steps, useful)
        total += 3 * forward - first
    return total


def learner_step_graph_flops(learner, num_tokens: int) -> float:
    """Matmul FLOPs of one optimizer step counted on its traced graph: the per-replica step
    (loss, gradients; for RL the rollout) traced alone on the data's element spec."""
    spec = learner.iterator.element_spec
    step = tf.function(lambda scene: learner._replica_compute(scene, tf.constant(0, tf.int64)))
    concrete = step.get_concrete_function(spec)
    return flop_count.concrete_matmul_flops(concrete, default_trips=num_tokens)


def train_step_flops(
    mode: str, model, batches: list[dict], rollouts: int, num_tokens: int, useful: bool
) -> float:
    """Mean matmul FLOPs of one step over `batches`: BC = teacher-forced
    forward + backward; RL = the sampled rollout + forward + backward of the R rollouts."""
    dims = ModelDims.from_model(model)
    total = 0.0
    for batch in batches:
        scenes = scene_counts(batch, useful)
        if mode == "bc":
            total += bc_step_flops(dims, scenes, num_tokens, useful)
        else:
            total += rollout_flops(dims, scenes, rollouts, num_tokens, useful)
            total += bc_step_flops(dims, scenes * rollouts, num_tokens, useful)
    return total / len(batches)
