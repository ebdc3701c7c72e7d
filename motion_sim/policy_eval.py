r"""Policy-evaluation benchmark: 64 random-shooting planners judged by sim agents (Sec. 4.2).

    python -m motion_sim.policy_eval --scenarios='/data/gpudrive/*.json,/data/womd/*.tfrecord' \
        --sim_agents=log,cv,bc=runs/demo/pretrain,rl=runs/demo/finetune \
        --output_dir=runs/policy_eval [--rollouts=4 --seed=0]

Every planner (`planning.candidates.planner_set`: J candidates x D token steps) drives the
scene's SDC closed loop in every world: `log` (log playback, the ground truth), `cv` (constant
velocity) and each sim-agent model (NAME=DIR: a SavedModel from `export.export_model`, run
through its closed-loop start / step signatures, or a training run directory with
`operative_config.gin` and checkpoints, rebuilt and run in process through the sampler's
closed-loop step API -- the same step either way; DIR's basename names it when NAME= is left
out). Model worlds run K
rollouts per planner, all P x K worlds batched.

Writes OUTPUT_DIR/scenes/<scenario_id>.json per scene (atomic; a rerun skips finished scene x
world pairs, so an interrupted run resumes), then OUTPUT_DIR/policy_eval.json (per world: mean
return per planner; vs the ground truth: Spearman, normalised MAE, regret@1/@5, bootstrap error
bars), policy_eval.md (the tables) and policy_eval.png (estimated vs true return per planner).
Prints one JSON line: scenes, skips, seconds per scene per world.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import zlib

import numpy as np
import tensorflow as tf
from absl import app, flags
from tqdm import tqdm

from motion_sim.data import datatypes, gpudrive_reader, scenario_reader
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.scene_builder import build_scene
from motion_sim.data.tfrecord_io import expand_pattern
from motion_sim.metrics import scenario_arrays
from motion_sim.planning import candidates, episode, scores, worlds
from motion_sim.planning import reward as reward_lib
from motion_sim.planning.planner import RandomShootingPlanner
from motion_sim.planning.scene_context import build_context
from motion_sim.tokenizer import ActionTokenizer

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a program: tests import this module next to other CLIs that
    define the same flag names (`output_dir`), and absl refuses a second definition."""
    flags.DEFINE_string(
        "scenarios", None, "comma-separated globs: GPUDrive *.json, Scenario TFRecords"
    )
    flags.DEFINE_list("sim_agents", ["log", "cv"], "log, cv, [NAME=]SAVED_MODEL_OR_RUN_DIR ...")
    flags.DEFINE_string("output_dir", None, "where results go")
    flags.DEFINE_integer("rollouts", 4, "K rollouts per planner in model worlds")
    flags.DEFINE_integer("seed", 0, "sampling seed (per scene: fold with crc32(scenario_id))")
    flags.DEFINE_integer("max_scenes", 0, "stop after this many usable scenes (0 = all)")
    flags.DEFINE_integer("bootstrap", 1000, "scene bootstrap resamples for the error bars")
    flags.DEFINE_multi_string(
        "gin_bindings", [], "gin bindings (PlannerReward, RandomShootingPlanner)"
    )


GROUND_TRUTH = "log"


def read_scenarios(patterns: str):
    """Yields (RawScenario | None, source, skip reason | None) for every input record."""
    for pattern in patterns.split(","):
        for path in expand_pattern(pattern.strip()):
            if path.endswith(".json"):
                try:
                    yield gpudrive_reader.read_gpudrive_file(path), path, None
                except datatypes.ScenarioError as e:
                    yield None, str(e), e.reason
                continue
            for source, serialized in scenario_reader.iter_scenario_records(path):
                try:
                    yield scenario_reader.read_scenario_bytes(serialized, source), source, None
                except datatypes.ScenarioError as e:
                    yield None, str(e), e.reason


def scene_context(raw):
    """SceneContext of a RawScenario, or raise ScenarioError naming why it cannot be used."""
    future = raw.valid[raw.sdc_index, datatypes.CURRENT_INDEX + 1 :]
    if raw.xyz.shape[1] != datatypes.NUM_STEPS or not future.any():
        raise datatypes.ScenarioError(
            raw.source,
            "the SDC has no logged future (a test-split "
            "scene?): nothing to compare planners against",
            reason="no_future",
        )
    scene, _ = build_scene(raw)
    arrays = scenario_arrays.scenario_arrays(to_scenario_proto(raw), raw.source)
    return build_context(raw, scene, {k: getattr(arrays, k) for k in reward_lib.EDGE_FIELDS})


def make_world(spec: str):
    """`log`, `cv` or [NAME=]RUN_DIR -> a world."""
    if spec == "log":
        return worlds.LogWorld()
    if spec == "cv":
        return worlds.ConstantVelocityWorld()
    name, _, path = spec.rpartition("=")
    name = name or os.path.basename(os.path.normpath(path))
    # A binary may import export/ (library code may not).
    from export import loader

    if os.path.exists(os.path.join(path, "saved_model.pb")):
        info = loader.read_sim_agent_info(path).get("tokenizer")
        if not info:
            raise loader.SimAgentLoadError(f"{path}: sim_agent.json records no tokenizer")
        tokenizer = ActionTokenizer(
            token_hz=info["token_hz"],
            num_bins=info.get("num_bins", math.isqrt(info["vocab_size"])),
            max_accel=info.get("max_accel", 6.0),
            still_distance=info.get("still_distance", 0.05),
        )
        stepper = loader.ClosedLoopStepper(loader.load_sim_agent(path))
        return worlds.ModelWorld(name, stepper, tokenizer)
    from export.export_model import load_trained_policy
    from motion_sim.sampler import Sampler

    policy = load_trained_policy(path)
    stepper = Sampler(policy.model, policy.tokenizer, num_rollouts=1)
    return worlds.ModelWorld(name, stepper, policy.tokenizer)


def _write_atomic(path: str, payload: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f)
    os.replace(tmp, path)


def summarize(per_scene: list[dict], world_names: list[str], planners, num_boot: int) -> dict:
    """Per-world mean returns and comparisons with the ground truth."""
    returns = {
        w: np.array([np.mean(s["worlds"][w]["returns"], axis=1) for s in per_scene])
        for w in world_names
    }  # [S, P]
    out = {
        "planners": planners.names,
        "num_scenes": len(per_scene),
        "scenes": [s["scenario_id"] for s in per_scene],
        "worlds": {},
    }
    for w in world_names:
        entry = {"mean_return": returns[w].mean(0).tolist()}
        for term in ("collision", "offroad", "off_route", "progress"):
            entry[f"mean_{term}"] = float(
                np.mean([np.mean(s["worlds"][w][term]) for s in per_scene])
            )
        if GROUND_TRUTH in returns:
            entry["vs_ground_truth"] = scores.compare_with_bootstrap(
                returns[w], returns[GROUND_TRUTH], num_boot
            )
        out["worlds"][w] = entry
    return out


def write_markdown(summary: dict, path: str, seconds: dict) -> None:
    lines = [
        f"Scenes: {summary['num_scenes']}. Statistics vs log playback (ground truth) over "
        "the 64 planners' mean returns; ± = scene-bootstrap std, [2.5%, 97.5%].",
        "",
        "| world | Spearman ↑ | MAE (norm.) ↓ | regret@1 ↓ | regret@5 ↓ | mean return | "
        "s / scene |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, e in summary["worlds"].items():
        v = e.get("vs_ground_truth", {})

        def cell(k, v=v):
            if k not in v:
                return "-"
            return f"{v[k]['value']:.3f} ± {v[k]['std']:.3f} [{v[k]['lo']:.2f}, {v[k]['hi']:.2f}]"

        lines.append(
            f"| {w} | {cell('spearman')} | {cell('mae')} | {cell('regret@1')} | "
            f"{cell('regret@5')} | {np.mean(e['mean_return']):.2f} | "
            f"{seconds.get(w, float('nan')):.1f} |"
        )
    lines += [
        "",
        "Mean return per planner (J candidates, D token steps):",
        "",
        "| planner | " + " | ".join(summary["worlds"]) + " |",
        "|---" * (1 + len(summary["worlds"])) + "|",
    ]
    for i, name in enumerate(summary["planners"]):
        lines.append(
            f"| {name} | "
            + " | ".join(f"{e['mean_return'][i]:.2f}" for e in summary["worlds"].values())
            + " |"
        )
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def write_plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [w for w in summary["worlds"] if w != GROUND_TRUTH]
    truth = np.array(summary["worlds"][GROUND_TRUTH]["mean_return"])
    fig, axes = plt.subplots(
        1, max(len(names), 1), figsize=(4 * max(len(names), 1), 4), squeeze=False
    )
    for ax, w in zip(axes[0], names):
        est = np.array(summary["worlds"][w]["mean_return"])
        ax.scatter(truth, est, s=12)
        lo, hi = min(truth.min(), est.min()), max(truth.max(), est.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        rho = summary["worlds"][w]["vs_ground_truth"]["spearman"]["value"]
        ax.set_title(f"{w} (Spearman {rho:.2f})")
        ax.set_xlabel("true return (log playback)")
        ax.set_ylabel("estimated return")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=100)
    os.replace(path + ".tmp.png", path)


def main(argv) -> int:
    del argv
    import gin

    gin.parse_config(FLAGS.gin_bindings)
    if not FLAGS.scenarios or not FLAGS.output_dir:
        print(
            "motion_sim.policy_eval: error: --scenarios and --output_dir are required",
            file=sys.stderr,
        )
        return 2
    scene_dir = os.path.join(FLAGS.output_dir, "scenes")
    os.makedirs(scene_dir, exist_ok=True)
    world_list = [make_world(s) for s in FLAGS.sim_agents]
    names = [w.name for w in world_list]
    if len(set(names)) != len(names):
        print(f"motion_sim.policy_eval: error: world names repeat: {names}", file=sys.stderr)
        return 2
    planners = candidates.planner_set()
    planner = RandomShootingPlanner()
    skipped, per_scene, seconds = {}, [], {n: [] for n in names}
    inputs = list(read_scenarios(FLAGS.scenarios))
    bar = tqdm(total=len(inputs) * len(world_list), desc="scene x world", unit="run")
    for raw, source, reason in inputs:
        if FLAGS.max_scenes and len(per_scene) >= FLAGS.max_scenes:
            bar.update(len(world_list))
            continue
        if raw is None:
            skipped[reason] = skipped.get(reason, 0) + 1
            tqdm.write(f"skip: {source}")
            bar.update(len(world_list))
            continue
        try:
            ctx = scene_context(raw)
        except datatypes.ScenarioError as e:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
            tqdm.write(f"skip: {e}")
            bar.update(len(world_list))
            continue
        path = os.path.join(scene_dir, f"{ctx.scenario_id}.json")
        record = {
            "scenario_id": ctx.scenario_id,
            "source": raw.source,
            "rollouts": FLAGS.rollouts,
            "seed": FLAGS.seed,
            "worlds": {},
            "seconds": {},
        }
        if os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
            if old.get("rollouts") == FLAGS.rollouts and old.get("seed") == FLAGS.seed:
                record = old
        seed = tf.constant(
            [FLAGS.seed, zlib.crc32(ctx.scenario_id.encode()) & 0x7FFFFFFF], tf.int32
        )
        for world in world_list:
            bar.set_postfix_str(f"{ctx.scenario_id} {world.name}")
            if world.name not in record["worlds"]:
                start = time.time()
                res = episode.run_episode(ctx, world, planner, planners, FLAGS.rollouts, seed)
                record["worlds"][world.name] = {
                    k: np.asarray(v).tolist() for k, v in res._asdict().items()
                }
                record["seconds"][world.name] = time.time() - start
                _write_atomic(path, record)  # each finished world survives an interruption
            seconds[world.name].append(record["seconds"][world.name])
            bar.update(1)
        per_scene.append(record)
    bar.close()
    if not per_scene:
        print("motion_sim.policy_eval: error: no usable scene", file=sys.stderr)
        return 2
    summary = summarize(per_scene, names, planners, FLAGS.bootstrap)
    summary["skipped"] = skipped
    summary["seconds_per_scene"] = {n: float(np.mean(s)) for n, s in seconds.items()}
    summary["rollouts"] = FLAGS.rollouts
    _write_atomic(os.path.join(FLAGS.output_dir, "policy_eval.json"), summary)
    write_markdown(
        summary, os.path.join(FLAGS.output_dir, "policy_eval.md"), summary["seconds_per_scene"]
    )
    if GROUND_TRUTH in names:
        write_plot(summary, os.path.join(FLAGS.output_dir, "policy_eval.png"))
    print(
        json.dumps(
            {
                "scenes": len(per_scene),
                "skipped": skipped,
                "rollouts": FLAGS.rollouts,
                "seconds_per_scene_per_world": summary["seconds_per_scene"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
