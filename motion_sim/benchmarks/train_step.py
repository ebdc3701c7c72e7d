r"""BC and RL train-step time and MFU against this run's matmul roofline. Prints ONE JSON object.

    python -m motion_sim.benchmarks.train_step --gin_file=gin/model_1m.gin --batch=4 --rollouts=2

Workload: the bundled sample scenes (preprocessed into a temp dir), batch `--batch` (scenes are
repeated to fill it), the real learner loop (`Learner`, default strategy, `--steps` steps per
tf.function call, compile excluded: the first call is a warm-up).

Figures:
  bc_step_s / rl_step_s: wall seconds per optimizer step (best of `--repeats` loops).
  bc_matmul_gflop / rl_matmul_gflop: matmul FLOPs one step EXECUTES on the padded batch
    (`model_flops`, analytic: forward + backward, + for RL the sampled rollout), padding
    included. bc_graph_matmul_gflop / rl_graph_matmul_gflop: the same counted on the traced
    step graph (`flop_count`; the RL graph's prefix-bucket switch counted at its costliest
    branch, so for RL an upper bound; tests check both equal the analytic count exactly).
  bc_useful_gflop / rl_useful_gflop: the model's work on the batch's real entities only --
    valid agents, map polylines and traffic lights, attention over exactly the unmasked keys
    (`model_flops`, useful=True). useful_fraction = useful / matmul.
  matmul_roofline_gflops: a dense [M, K] x [K, N] float32 matmul (sizes --roofline_dim) timed in
    this process -- what this machine's matmul units deliver right now. Measured before and
    after every timed step loop and the BEST is used (on a shared machine a roofline taken
    in a busy moment would inflate the MFU); `roofline_samples_gflops` lists them all.
  bc_useful_mfu / rl_useful_mfu: (useful FLOPs / step time) / roofline -- model FLOP
    utilisation on real work, the figure to quote. The goal for BC on CPU is >= 0.4.
  bc_hardware_utilisation / rl_hardware_utilisation: (executed FLOPs / step time) / roofline --
    how busy the matmul units are, padding included.
  valid_agents / agent_slots, valid_polylines, valid_lights: per scene of the timed batches.
  load_average_1min: the machine's load when the run started and ended (2 cores here).

Run it for the paper's 10M model too: --gin_file=gin/model_10m.gin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import tensorflow as tf
from absl import app, flags

from motion_sim import sampler as sampler_lib
from motion_sim import tokenizer as tokenizer_lib
from motion_sim.benchmarks import model_flops
from motion_sim.data import pipeline
from motion_sim.learner.gin_config import parse_gin
from motion_sim.learner.learner import Learner
from motion_sim.losses.bc_loss import BCLoss
from motion_sim.losses.reinforce_loss import ReinforceLoss
from motion_sim.models.sim_agent_model import SimAgentModel

_SAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sample"
)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_multi_string("gin_file", ["gin/model_1m.gin"], "Model gin files.")
    flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings.")
    flags.DEFINE_integer("batch", 4, "Scenes per step.")
    flags.DEFINE_integer("rollouts", 2, "RL rollouts per scene.")
    flags.DEFINE_integer("steps", 3, "Steps per timed loop.")
    flags.DEFINE_integer("repeats", 2, "Timed loops (best is reported).")
    flags.DEFINE_integer("roofline_dim", 2048, "Size of the roofline matmul.")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the loss + gradient (Learner option).")
    flags.DEFINE_enum("which", "both", ["bc", "rl", "both"], "Which step(s) to time.")


def matmul_roofline(dim: int, repeats: int = 5) -> float:
    """Achieved FLOP/s of a square float32 matmul chain (best of `repeats`)."""
    a = tf.random.normal([dim, dim])
    b = tf.random.normal([dim, dim])
    f = tf.function(lambda a, b: tf.reduce_sum(a @ b @ b @ b))
    f(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 3 * 2 * dim**3 / best


def _time_learner(mode: str, data: str, root: str) -> tuple[float, float, Learner]:
    """(best seconds per step, graph-counted matmul FLOPs of one step, learner)."""
    tokenizer = tokenizer_lib.ActionTokenizer()
    model = SimAgentModel()
    optimizer = tf.keras.optimizers.AdamW(1e-4)
    rollout_fn = None
    if mode == "bc":
        loss = BCLoss(tokenizer=tokenizer)
    else:
        sampler = sampler_lib.Sampler(model, tokenizer=tokenizer, num_rollouts=FLAGS.rollouts)
        loss = ReinforceLoss(steps_per_token=tokenizer.steps_per_token)
        rollout_fn = lambda scene, seed: sampler(scene, seed)
    learner = Learner(
        root,
        tf.distribute.get_strategy(),
        model,
        optimizer,
        loss,
        lambda ctx: pipeline.make_dataset(
            data, FLAGS.batch, shuffle=False, cache=True, input_context=ctx
        ),
        rollout_fn=rollout_fn,
        max_steps=10**9,
        steps_per_loop=FLAGS.steps,
        checkpoint_interval=0,
        summary_interval=0,
        log_interval=10**9,
        jit_compile=FLAGS.jit_compile,
    )
    n = tf.constant(FLAGS.steps, tf.int64)
    learner._train_loop(learner.iterator, n)  # warm-up: trace + compile
    best = float("inf")
    for _ in range(FLAGS.repeats):
        t = time.perf_counter()
        means, _ = learner._train_loop(learner.iterator, n)
        float(means[loss.metric_names[0]])
        best = min(best, (time.perf_counter() - t) / FLAGS.steps)
    return best, model_flops.learner_step_graph_flops(learner, tokenizer.num_tokens), learner


def _timed_batches(data: str, count: int) -> list[dict]:
    """The first `count` batches the learner sees (same pipeline, same order)."""
    dataset = pipeline.make_dataset(data, FLAGS.batch, shuffle=False, cache=True)
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(count)]


def main(argv):
    del argv
    parse_gin(FLAGS.gin_file, ["SimAgentModel.max_steps = 16"] + list(FLAGS.gin_bindings))
    tmp = tempfile.mkdtemp(prefix="train_step_bench_")
    # A subprocess: the preprocess CLI's required flags would clash with this binary's.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.data.preprocess",
            f"--input={os.path.join(_SAMPLE, '*scenario*.tfrecord')}",
            f"--output_dir={os.path.join(tmp, 'data')}",
            "--format=scenario",
        ],
        check=True,
        capture_output=True,
    )
    data = os.path.join(tmp, "data", "*.tfrecord.gz")
    roofs = [matmul_roofline(FLAGS.roofline_dim)]
    load_start = os.getloadavg()[0]
    out = {
        "model_params": SimAgentModel().count_params(),
        "batch": FLAGS.batch,
        "rollouts": FLAGS.rollouts,
        "gin_file": FLAGS.gin_file,
        "jit_compile": FLAGS.jit_compile,
    }
    timed = {}
    for mode in ["bc", "rl"] if FLAGS.which == "both" else [FLAGS.which]:
        timed[mode] = _time_learner(mode, data, os.path.join(tmp, mode))
        roofs.append(matmul_roofline(FLAGS.roofline_dim))
    roof = max(roofs)
    out["matmul_roofline_gflops"] = roof / 1e9
    out["roofline_samples_gflops"] = [round(r / 1e9, 1) for r in roofs]
    num_tokens = tokenizer_lib.ActionTokenizer().num_tokens
    batches = _timed_batches(data, FLAGS.steps)
    valid = model_flops.scene_counts(batches[0], useful=True)
    out["agent_slots"] = model_flops.scene_counts(batches[0], useful=False)[0].agents
    out["valid_agents"] = [c.agents for c in valid]
    out["valid_polylines"] = [c.polylines for c in valid]
    out["valid_lights"] = [c.lights for c in valid]
    for mode, (step_s, graph_flops, learner) in timed.items():
        executed, useful = (
            model_flops.train_step_flops(
                mode, learner.model, batches, FLAGS.rollouts, num_tokens, u
            )
            for u in (False, True)
        )
        out[f"{mode}_step_s"] = step_s
        out[f"{mode}_matmul_gflop"] = executed / 1e9
        out[f"{mode}_graph_matmul_gflop"] = graph_flops / 1e9
        out[f"{mode}_useful_gflop"] = useful / 1e9
        out[f"{mode}_useful_fraction"] = round(useful / executed, 4)
        out[f"{mode}_useful_mfu"] = useful / step_s / roof
        out[f"{mode}_hardware_utilisation"] = executed / step_s / roof
    out["load_average_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
