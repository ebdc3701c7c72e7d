r"""Fast vs official WOSAC metrics over many distinct scenes and rollout kinds, in one run.

  python -m motion_sim.benchmarks.metrics --womd='../shared/womd/*.tfrecord' \
      --gpudrive='../shared/gpudrive/*.json' --num_synthetic=48

Prints one JSON line. Scenes: WOMD Scenario protos with 91 steps, GPUDrive JSON scenes the
reader accepts, and seeded synthetic scenes of varied size (agents, lanes, road length); others
are skipped and counted. For every rollout kind (`rollout_kinds`) every scene is scored once by
one `FastMetrics` from the protos (array conversion included), in order, so compilations happen
where a run meets a new shape bucket: `fast_total_s` is that whole pass, compilation included.
A call that compiled is timed again warm; the difference is its `compile_s`, and `fast_s_per_scene`
is the mean warm time. The official code scores `--official_per_kind` of the same scenes
(`_official_subset`: evenly spaced quantiles of the sim-agent count over the whole set, one
subset for every kind; --official_max_agents bounds their size), and `ratio` compares the mean
times of both on exactly those scenes; `per_scene` lists each subset scene's agents, fast and
official seconds and ratio, since the ratio grows with the scene. `ratio_whole_set_with_compile` = official seconds estimated for the whole
set (each kind's subset mean x its scene count) / the whole fast pass.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
import time

# Module-level imports like every entry point. (TF 2.13 imported inside absl's main starts
# without an eager outer context, which turns a traced `tensor == tensor` into a Python bool;
# fast_features uses tf.equal for that reason -- tests/metrics/test_late_tf_import.py.)
import numpy as np
import tensorflow as tf
from absl import app, flags

from motion_sim.benchmarks import rollout_kinds
from motion_sim.data import gpudrive_reader, scenario_writer, synthetic
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import (
    fast_metrics,
    official_backend,
    rollout_checks,
    rollouts_io,
    scenario_arrays,
)
from motion_sim.metrics import results as results_lib

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_string("womd", "", "Glob of WOMD Scenario TFRecords (91-step scenes).")
    flags.DEFINE_string("gpudrive", "", "Glob of GPUDrive JSON scenes.")
    flags.DEFINE_integer("num_synthetic", 48, "Synthetic scenes of varied size.")
    flags.DEFINE_list("kinds", ["near_log", "noisy_cv", "random"], "Rollout kinds.")
    flags.DEFINE_integer(
        "official_per_kind",
        4,
        "Scenes per kind also scored by the official code (>= 1: the ratio needs them).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "official_max_agents",
        0,
        "Only scenes with at most this many sim agents go to the official "
        "subset (0: any). The official code takes minutes per large scene on a loaded box.",
    )
    flags.DEFINE_string("config", "2025", "Metric config year.")


def _synthetic(count: int) -> list:
    """`count` scenes: 6..220 agents, 1..4 lanes per direction, 200..1200 m roads."""
    rng = np.random.default_rng(2026)
    out = []
    for i in range(count):
        generator = synthetic.SyntheticScenarioGenerator(
            num_agents=int(rng.integers(6, 221)),
            lanes_per_direction=int(rng.integers(1, 5)),
            road_length_m=float(rng.integers(200, 1201)),
            seed=i,
        )
        scenario = scenario_writer.to_scenario_proto(generator.generate(0))
        scenario.scenario_id = f"synthetic_{i:03d}"
        out.append(scenario)
    return out


def _scenes() -> tuple[list, list, dict]:
    """(real scenes, synthetic scenes, skipped reason -> count)."""
    real, skipped = [], {}
    for path in rollouts_io.expand(FLAGS.womd) if FLAGS.womd else []:
        try:
            for _, scenario in rollouts_io.read_scenarios(path):
                if len(scenario.timestamps_seconds) != scenario_arrays.NUM_STEPS:
                    skipped["womd_not_91_steps"] = skipped.get("womd_not_91_steps", 0) + 1
                    continue
                real.append(scenario)
        except rollout_checks.RolloutError as e:  # e.g. a tf.Example file matched by the glob
            skipped[f"womd_{e.reason}"] = skipped.get(f"womd_{e.reason}", 0) + 1
    for path in sorted(glob.glob(FLAGS.gpudrive)) if FLAGS.gpudrive else []:
        try:
            scenario = scenario_writer.to_scenario_proto(gpudrive_reader.read_gpudrive_file(path))
            scenario_arrays.scenario_arrays(scenario, path)
        except (ValueError, KeyError, rollout_checks.RolloutError) as e:
            reason = f"gpudrive_{getattr(e, 'reason', type(e).__name__)}"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        real.append(scenario)
    return real, _synthetic(FLAGS.num_synthetic), skipped


def _num_agents(scenario) -> int:
    return int(scenario_arrays.scenario_arrays(scenario).agent_mask.sum())


def _official_subset(scenes: list, count: int) -> list[int]:
    """Indices of `count` scenes at evenly spaced quantiles of the sim-agent count over the whole
    set (real and synthetic alike), the same for every rollout kind, so the subset stands for the
    set and the kinds' ratios compare like with like. --official_max_agents drops larger scenes
    first (the official code takes minutes per large scene on a loaded box)."""
    limit = FLAGS.official_max_agents or 10**9
    sizes = [_num_agents(s) for s in scenes]
    by_size = sorted((i for i in range(len(scenes)) if sizes[i] <= limit), key=lambda i: sizes[i])
    count = min(count, len(by_size))
    return [by_size[int((k + 0.5) * len(by_size) / count)] for k in range(count)]


def _max_diff(a, b) -> float:
    da, db = results_lib.metrics_to_dict(a), results_lib.metrics_to_dict(b)
    return max(abs(da[k] - db[k]) for k in results_lib.METRIC_FIELDS)


def main(argv):
    del argv
    load_start = os.getloadavg()
    config = config_lib.load_config(FLAGS.config)
    real, synth, skipped = _scenes()
    scenes = real + synth
    fast = fast_metrics.FastMetrics(config)
    buckets = {scenario_arrays.scenario_arrays(s).bucket for s in scenes}
    kinds, fast_total, official_total_est, max_diff = {}, 0.0, 0.0, 0.0
    # One subset for every kind: the scenes' sizes are converted and ranked once.
    subset = _official_subset(scenes, FLAGS.official_per_kind)
    subsets = {}
    for kind in FLAGS.kinds:
        subsets[kind] = subset
        rollouts = [rollout_kinds.make_rollouts(s, kind, seed=i) for i, s in enumerate(scenes)]
        compilations, fallbacks = fast.compilations, fast.fallback_steps
        warm, compile_s, results = [], 0.0, []
        for scenario, rollout in zip(scenes, rollouts):
            before = fast.compilations
            start = time.perf_counter()
            results.append(fast.metrics_from_protos(scenario, rollout))
            seconds = time.perf_counter() - start
            if fast.compilations > before:  # time it warm: the rest was compilation
                start = time.perf_counter()
                fast.metrics_from_protos(scenario, rollout)
                warm.append(time.perf_counter() - start)
                compile_s += seconds - warm[-1]
            else:
                warm.append(seconds)
        kind_total = sum(warm) + compile_s  # = the pass as it ran (the warm re-runs excluded)
        fast_total += kind_total
        official_s, diffs = [], []
        for i in subset:
            start = time.perf_counter()
            official = official_backend.official_scenario_metrics(config, scenes[i], rollouts[i])
            official_s.append(time.perf_counter() - start)
            diffs.append(_max_diff(official, results[i]))
        fast_subset = float(np.mean([warm[i] for i in subset]))
        official_mean = float(np.mean(official_s))
        official_total_est += official_mean * len(scenes)
        max_diff = max(max_diff, max(diffs))
        kinds[kind] = kind_line = {
            "fast_s_per_scene": float(np.mean(warm)),
            "fast_s_per_scene_subset": fast_subset,
            "official_s_per_scene_subset": official_mean,
            "ratio": official_mean / fast_subset,
            "compile_s": compile_s,
            "compilations": fast.compilations - compilations,
            "retries": 0,
            "fallback_steps": fast.fallback_steps - fallbacks,
            "max_abs_diff_subset": max(diffs),
            "fast_total_s": kind_total,
            "mean_metametric": float(np.mean([r.metametric for r in results])),
            "official_agents": [_num_agents(scenes[i]) for i in subset],
            "per_scene": [
                {
                    "scenario_id": scenes[i].scenario_id,
                    "agents": _num_agents(scenes[i]),
                    "fast_s": round(warm[i], 4),
                    "official_s": round(official, 2),
                    "ratio": round(official / warm[i], 1),
                }
                for i, official in zip(subset, official_s)
            ],
        }
        print(f"# {kind}: {json.dumps(kind_line)}", file=sys.stderr, flush=True)
    line = {
        "benchmark": "wosac_metrics_many_scenes",
        "config": FLAGS.config,
        "num_scenes": len(scenes),
        "num_real": len(real),
        "num_synthetic": len(synth),
        "skipped": skipped,
        "official_subsets": {k: [scenes[i].scenario_id for i in v] for k, v in subsets.items()},
        "agents_min_max": [min(len(s.tracks) for s in scenes), max(len(s.tracks) for s in scenes)],
        "rollouts_per_scene": 32,
        "kinds": kinds,
        "min_ratio": min(k["ratio"] for k in kinds.values()),
        "fast_total_s": fast_total,
        "official_total_est_s": official_total_est,
        "ratio_whole_set_with_compile": official_total_est / fast_total,
        "compilations": fast.compilations,
        "buckets_used": len(buckets),
        "buckets_defined": len(scenario_arrays.BUCKETS),
        "retries": 0,
        "fallback_steps": fast.fallback_steps,
        "max_abs_diff": max_diff,
        "seconds_by_part": {k: round(v, 2) for k, v in fast.seconds.items()},
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
        "cpu_count": os.cpu_count(),
        "platform": platform.processor() or platform.machine(),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    app.run(main)
