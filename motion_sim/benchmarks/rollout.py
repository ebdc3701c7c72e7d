"""Rollout throughput of the compiled, KV-cached sampler vs an uncached decoder and a matmul
roofline, on this machine. Prints ONE JSON object.

    python -m motion_sim.benchmarks.rollout --gin_file=gin/model_10m.gin \
        [--agents=128 --rollouts=32 --repeats=3]

Workload: one WOMD scene (the bundled sample; agent slots beyond its real agents are filled
with shifted copies so all `--agents` are valid), `--rollouts` joint rollouts of all agents,
16 token steps (2 Hz x 8 s), decoded to 10 Hz.

Figures:
  seconds_per_scenario: best of `--repeats` timed calls of the compiled sampler (compile
    excluded), encoding + decoding + 10 Hz trajectories included.
  achieved_gflops: FLOPs the cached rollout executes (`model_flops`, analytic, checked against
    the traced graph in tests: matmuls and attention products, 2 FLOPs per multiply-add;
    self-attention over the cache prefix each step actually reads -- its bucket of the static
    [T*A] cache -- masked keys inside it and the folded bias/denominator columns included),
    / seconds_per_scenario.
  useful_flops_per_scenario: the model's work on the scene's real entities only (valid agents,
    polylines and lights; each step attends to exactly the steps so far, head width d);
    useful_fraction = useful / executed.
  matmul_gflops: an XLA dense [R*A, D] x [D, FFN] matmul, timed in this process: the
    roofline of a compute-bound matmul of the rollout's typical size. Timed right before and
    right after the cached runs; the BEST is used (a roofline taken in a busy moment of a
    shared machine would inflate the ratio). load_average_1min: at start and end.
  useful_mfu: useful FLOPs / seconds / matmul_gflops -- model FLOP utilisation on real
    work, the figure to quote. hardware_utilisation: achieved_gflops / matmul_gflops (executed
    work, padding included; called roofline_ratio before 2026-12-02).
  speedup_vs_uncached: the same model sampling the same way but re-running the full decoder
    over the growing token prefix at every step (no KV cache; scene encoded once; one XLA
    program per prefix length), / seconds_per_scenario.
  flop_ratio_vs_uncached: uncached FLOPs / cached FLOPs (both counted as above): the speedup the
    cache would give if both ran at the same FLOP/s. The cached step reads its whole prefix
    (about (T + 1) / 2 steps of keys) through small per-(rollout, head) attention matmuls;
    `speedup_vs_uncached / flop_ratio_vs_uncached` is the cached run's relative efficiency.
  peak_memory_gb: process peak RSS after the cached runs (before the uncached baseline runs);
    peak_memory_gb_with_uncached: at the end.
  intra_op_threads: `--intra_op_threads` (0 = TF's default pool). With 1 both paths run on one
    core, so speedup_vs_uncached then shows the cache's gain without the cores' scaling.
"""

from __future__ import annotations

import json
import os
import resource
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

import gin
from motion_sim.benchmarks import model_flops
from motion_sim.data.scenario_reader import read_scenario_files
from motion_sim.data.scene_builder import build_scene
from motion_sim.models import inputs
from motion_sim.models.sim_agent_model import SimAgentModel
from motion_sim.sampler import Sampler, filter_logits
from motion_sim.tokenizer import ActionTokenizer

_SAMPLE = "motion_sim/data/sample/motion_data_one_scenario.tfrecord"

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_multi_string("gin_file", ["gin/model_10m.gin"], "Model gin files.")
    flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings.")
    flags.DEFINE_integer("agents", 128, "Valid agents in the scene.")
    flags.DEFINE_integer("rollouts", 32, "Rollouts per scene.")
    flags.DEFINE_integer("token_hz", 2, "Token rate (2 Hz = 16 steps).")
    flags.DEFINE_integer("repeats", 3, "Timed calls (best is reported).")
    flags.DEFINE_bool("uncached", True, "Also time the uncached baseline.")
    flags.DEFINE_string("scenario", _SAMPLE, "Scenario proto TFRecord for the scene.")
    flags.DEFINE_integer(
        "intra_op_threads",
        0,
        "Threads of TF's intra-op pool, which XLA CPU's matmuls run on (0: TF's "
        "default, one per core). 1 measures how each path scales with cores.",
    )


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _scene(path: str, num_agents: int) -> dict:
    """Batch of one scene with exactly `num_agents` valid agents."""
    scene, _ = build_scene(next(iter(read_scenario_files(path))))
    scene = {k: np.asarray(v)[None] for k, v in scene._asdict().items()}
    real = int(scene["agent_mask"].sum())
    for name in (
        "agent_xy",
        "agent_z",
        "agent_vel",
        "agent_heading",
        "agent_size",
        "agent_type",
        "agent_valid",
        "agent_mask",
        "agent_id",
        "tracks_to_predict",
    ):
        value = scene[name]
        reps = -(-num_agents // real)
        tiled = np.concatenate([value[:, :real]] * reps, axis=1)[:, :num_agents]
        scene[name] = tiled
    # Copies are shifted sideways by 4 m per copy so no two agents coincide.
    copy = (np.arange(num_agents) // real)[None, :, None, None]
    scene["agent_xy"] = (scene["agent_xy"] + copy * np.array([0.0, 4.0])).astype(np.float32)
    return scene


def rollout_flops(model: SimAgentModel, scene: dict, R: int, T: int, useful: bool) -> float:
    """FLOPs of one compiled rollout of `scene` (`model_flops.rollout_flops`): as executed
    (useful=False: padding, prefix buckets and folded columns included) or the useful work."""
    dims = model_flops.ModelDims.from_model(model)
    return model_flops.rollout_flops(dims, model_flops.scene_counts(scene, useful), R, T, useful)


def uncached_rollout_flops(model: SimAgentModel, scene: dict, R: int, T: int) -> float:
    """FLOPs of the uncached baseline (`uncached_rollout_fn`) as executed: the scene encoded
    once, then step t runs the whole decoder over t + 1 steps of tokens for the R rollouts,
    block-causal self-attention in the teacher-forced pass's query chunks, scene keys/values
    projected every step.

    `uncached_rollout_flops / rollout_flops` is the speedup the KV cache can give at equal
    FLOP/s: the cache saves the decoder work over earlier steps, but the cached step's own
    attention over the prefix remains.
    """
    dims = model_flops.ModelDims.from_model(model)
    total = 0.0
    for c in model_flops.scene_counts(scene, useful=False):
        total += model_flops.scene_encoder_flops(dims, c)[0]
        total += model_flops.identity_flops(dims, c.agents)[0]
        # The decoder pass over t + 1 steps of R rollouts, less its identity MLP (run once).
        total += R * sum(
            model_flops.teacher_forced_flops(dims, c, t + 1, useful=False)[0]
            - model_flops.scene_encoder_flops(dims, c)[0]
            - model_flops.identity_flops(dims, c.agents)[0]
            for t in range(T)
        )
    return total


def matmul_gflops(m: int, k: int, n: int, seconds: float = 2.0) -> float:
    """Measured float32 GFLOP/s of an XLA [m, k] x [k, n] matmul (chained to stay honest)."""
    a = tf.random.normal([m, k])
    w = tf.random.normal([k, n]) / k**0.5
    reps = 8

    @tf.function(jit_compile=True)
    def run(a):
        acc = tf.zeros([m, n])
        for _ in range(reps):
            acc = acc + tf.matmul(a, w)
            a = a + 1e-3 * acc[:, :k] if n >= k else a
        return acc

    run(a).numpy()
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run(a).numpy()
        best = min(best, time.perf_counter() - t0)
    return reps * 2.0 * m * k * n / best / 1e9


def uncached_rollout_fn(model: SimAgentModel, tokenizer: ActionTokenizer, R: int):
    """Same sampling, no KV cache: step t re-runs the decoder over tokens [0, t].

    The scene is encoded once. Each prefix length is its own static shape, so each step is
    its own XLA program (traced once per length, on the warm-up call): one program holding
    all T unrolled decoders compiles for many minutes, and the Python dispatch of T calls
    costs microseconds next to the decoder work.
    """
    T = tokenizer.num_tokens

    @tf.function(jit_compile=True)
    def prepare(scene):
        scene_emb, scene_mask = model.encode(scene)
        tile = lambda x: tf.repeat(x, R, axis=0)
        return (
            tile(model.decoder.agent_embedding(scene)),
            tile(tf.cast(scene["agent_mask"], tf.bool)),
            tile(scene_emb),
            tile(scene_mask),
        )

    @tf.function(jit_compile=True)
    def step(tokens, agent_emb, agent_mask, scene_emb, scene_mask, seed):
        batch_r, num_agents, t = tokens.shape
        # The decoder's input at step t is token t-1, so feed the prefix plus a dummy slot.
        prefix = tf.concat([tokens, tf.zeros([batch_r, num_agents, 1], tf.int32)], axis=2)
        logits = model.decoder(prefix, agent_emb, agent_mask, scene_emb, scene_mask)[:, :, -1]
        flat = tf.reshape(filter_logits(logits), [batch_r * num_agents, -1])
        choice = tf.random.stateless_categorical(
            flat, 1, tf.random.experimental.stateless_fold_in(seed, t), dtype=tf.int32
        )
        return tf.concat([tokens, tf.reshape(choice, [batch_r, num_agents, 1])], axis=2)

    def run(scene, seed):
        state = prepare(scene)
        tokens = tf.zeros([state[1].shape[0], state[1].shape[1], 0], tf.int32)
        for _ in range(T):
            tokens = step(tokens, *state, seed)
        return tokens

    return run


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        tf.nest.map_structure(lambda x: x.numpy(), fn())
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv):
    del argv
    if FLAGS.intra_op_threads:  # before the first op: the pool is fixed once TF starts
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
    gin.parse_config_files_and_bindings(FLAGS.gin_file, FLAGS.gin_param)
    model = SimAgentModel()
    tokenizer = ActionTokenizer(FLAGS.token_hz)
    A, R, T = FLAGS.agents, FLAGS.rollouts, tokenizer.num_tokens
    scene = _scene(FLAGS.scenario, A)
    sampler = Sampler(model, tokenizer, num_rollouts=R)

    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    sampler(scene, 0).tokens.numpy()
    compile_s = time.perf_counter() - t0
    hp = model.hparams
    roof_before = matmul_gflops(R * A, hp["hidden"], hp["ffn_dim"])
    seconds = _best_time(lambda: sampler(scene, 1), FLAGS.repeats)
    roof_after = matmul_gflops(R * A, hp["hidden"], hp["ffn_dim"])
    peak_cached = _peak_rss_gb()

    flops = rollout_flops(model, scene, R, T, useful=False)
    useful = rollout_flops(model, scene, R, T, useful=True)
    uncached_flops = uncached_rollout_flops(model, scene, R, T)
    roof = max(roof_before, roof_after)
    achieved = flops / seconds / 1e9
    result = {
        "params": int(model.count_params()),
        "agents": A,
        "rollouts": R,
        "token_steps": T,
        "valid_polylines": model_flops.scene_counts(scene, useful=True)[0].polylines,
        "valid_lights": model_flops.scene_counts(scene, useful=True)[0].lights,
        "seconds_per_scenario": round(seconds, 4),
        "tokens_per_second": round(R * A * T / seconds, 1),
        "flops_per_scenario": flops,
        "useful_flops_per_scenario": useful,
        "useful_fraction": round(useful / flops, 4),
        "uncached_flops_per_scenario": uncached_flops,
        "flop_ratio_vs_uncached": round(uncached_flops / flops, 2),
        "achieved_gflops": round(achieved, 2),
        "matmul_gflops": round(roof, 2),
        "matmul_gflops_samples": [round(roof_before, 2), round(roof_after, 2)],
        "useful_mfu": round(useful / seconds / 1e9 / roof, 3),
        "hardware_utilisation": round(achieved / roof, 3),
        "compile_seconds": round(compile_s, 2),
        "peak_memory_gb": round(peak_cached, 3),
        "trace_count": sampler.trace_count,
        # As TF applied it (0: its default pool): a flag given after TF started would not be.
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }
    if FLAGS.uncached:
        run = uncached_rollout_fn(model, tokenizer, R)
        model_scene = inputs.scene_inputs(scene)
        seed = tf.constant([1, 2], tf.int32)
        run(model_scene, seed).numpy()  # compile
        uncached = _best_time(lambda: run(model_scene, seed), FLAGS.repeats)
        result["uncached_seconds_per_scenario"] = round(uncached, 4)
        result["speedup_vs_uncached"] = round(uncached / seconds, 2)
        result["peak_memory_gb_with_uncached"] = round(_peak_rss_gb(), 3)
    result["load_average_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result))


if __name__ == "__main__":
    define_flags()
    app.run(main)
