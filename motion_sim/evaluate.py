r"""Scores WOSAC rollouts with the official or the fast (XLA) metrics.

  python -m motion_sim.evaluate --scenarios='/data/validation/*.tfrecord*' \
      --rollouts='/runs/x/submission.binproto-*' --config=2025 --backend=fast \
      --output=/runs/x/wosac.json

`--rollouts` takes comma-separated globs of binproto files (SimAgentsChallengeSubmission or
ScenarioRollouts) or .tar.gz archives of them; `--saved_model=DIR` instead generates the rollouts
with an exported model (export/saved_model_rollouts.py). Writes FILE.json (official field names)
and FILE.md (a Table-1 row). Bad input stops the run with an error naming the file, scenario
and cause.

History-only scenes (the WOMD test split: 11 steps) have no logged future to score against:
with --rollouts they are a one-line error naming the scene; with --saved_model their rollouts
are generated and validated but not scored (listed under `unscored`), and
`--rollouts_output=FILE` keeps every generated rollout (a SimAgentsChallengeSubmission
binproto that `--rollouts` reads back). When no scene can be scored that file is the output.

With --saved_model, sim agents the model does not simulate (beyond its agent slots, or masked
out) are driven by the constant-velocity fallback and scored like the rest: the run prints and
writes (`fallback` in FILE.json) how many agents and scenes that was, warns loudly above
--max_fallback_fraction of the agents, and stops with an error on a scenario where the model
simulated no agent at all (its score would be the fallback's, not the model's).

At scale, --saved_model runs --batch_size scenes per model call on every local accelerator
(export/batched_rollouts.py, the strategy factory's strategy), and --images_dir=DIR draws the
first --num_images scored scenes (PNG + TensorBoard image summaries:
`tensorboard --logdir DIR`). Over hosts, `--task_index=t --num_tasks=N` (or TF_CONFIG) scores
task t's share of the scenes into FILE.parts/ and `python -m motion_sim.evaluate merge
--output=FILE.json` writes FILE.json from the parts (motion_sim/evaluate_split.py).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys
import time
from typing import Iterator

import tqdm
from absl import app, flags, logging

from export import task_split
from motion_sim import evaluate_split
from motion_sim.data import run_lock
from motion_sim.metrics import backend as backend_lib
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import history_only, rollout_checks, rollouts_io
from motion_sim.metrics import results as results_lib

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a program, so importing this module (tests, report) defines no
    global flags that could collide with another CLI's."""
    flags.DEFINE_string("scenarios", None, "Comma-separated globs of Scenario TFRecords.")
    flags.DEFINE_string(
        "rollouts", None, "Comma-separated globs of rollout binprotos or .tar.gz archives of them."
    )
    flags.DEFINE_string(
        "saved_model",
        None,
        "Exported SavedModel that generates the rollouts (instead of --rollouts).",
    )
    flags.DEFINE_integer("seed", 0, "Rollout seed for --saved_model.")
    flags.DEFINE_string(
        "rollouts_output",
        None,
        "With --saved_model: also write the generated "
        "rollouts to this binproto (the only output for history-only scenes).",
    )
    flags.DEFINE_enum("config", "2025", list(config_lib.CONFIG_YEARS), "Metric config year.")
    flags.DEFINE_enum(
        "backend", "fast", [k.value for k in backend_lib.BackendKind], "Metric implementation."
    )
    flags.DEFINE_string("output", None, "Output JSON path (FILE.md is written beside it).")
    flags.DEFINE_integer(
        "num_workers",
        1,
        "Worker processes scoring scenarios (each fast worker compiles its shape buckets once).",
    )
    flags.DEFINE_string(
        "method_name", None, "Row name in the markdown table (default: the output file stem)."
    )
    flags.DEFINE_integer(
        "batch_size",
        1,
        "With --saved_model: scenes per model call per "
        "replica (export/batched_rollouts.py, on every local accelerator); 1 = "
        "one scene per call, per-scenario seeds.",
    )
    flags.DEFINE_string(
        "images_dir",
        None,
        "Also draw the first --num_images scored scenes "
        "(motion_sim.viz figure: log | rollouts): PNGs + TensorBoard images here.",
    )
    flags.DEFINE_integer("num_images", 4, "Scenes drawn with --images_dir.")
    flags.DEFINE_integer("task_index", None, "This task of a split run (with --num_tasks).")
    flags.DEFINE_integer(
        "num_tasks",
        None,
        "Tasks of a split run (default: TF_CONFIG's, else 1): each writes FILE.parts/, then "
        "`python -m motion_sim.evaluate merge --output=FILE`.",
    )
    flags.DEFINE_float(
        "max_fallback_fraction",
        0.01,
        "With --saved_model: warn when more than "
        "this fraction of sim agents get the constant-velocity fallback.",
    )


def _model_rollouts(saved_model: str, scenario, seed: int, source: str, fallback_counts: list):
    """Validated rollouts of `scenario` by the SavedModel; appends its `RolloutStats` to
    `fallback_counts`. A model that simulates none of the scene's sim agents is an error."""
    # Imported here: the export stack (model code) is only needed with --saved_model.
    from export import saved_model_rollouts  # pylint: disable=import-outside-toplevel

    rollouts, stats = saved_model_rollouts.generate_scenario_rollouts_with_stats(
        saved_model, scenario, seed, source
    )
    return _checked(saved_model, scenario, source, rollouts, stats, fallback_counts)


def _checked(saved_model: str, scenario, source: str, rollouts, stats, fallback_counts: list):
    """`rollouts` after the no-model-agent check and validation; counts its fallback."""
    if stats.num_sim_agents and not stats.num_model_agents:
        raise rollout_checks.RolloutError(
            source,
            f"{saved_model} simulated no agent of scenario {scenario.scenario_id}: all "
            f"{stats.num_sim_agents} sim agents would be constant-velocity fallback",
            reason="no_model_agents",
        )
    fallback_counts.append(stats)
    rollout_checks.validate_rollouts(rollouts, scenario, f"{saved_model} on {source}")
    return rollouts


def _batched_model_pairs(
    scenarios: dict,
    saved_model: str,
    seed: int,
    batch_size: int,
    fallback_counts: list,
    unit_keys: dict,
) -> Iterator[tuple[str, object, object]]:
    """(source, Scenario, validated ScenarioRollouts) by the SavedModel, `batch_size` scenes
    per call on every replica of the strategy factory's strategy (export/batched_rollouts.py);
    a call never mixes `unit_keys` (so a split run batches as one process does)."""
    # Imported here: the export stack (model code) is only needed with --saved_model.
    from export import batched_rollouts, scene_input  # pylint: disable=import-outside-toplevel

    runner = batched_rollouts.BatchedRollouts(saved_model, batch_size)

    def items():
        for source, scenario in scenarios.values():
            yield batched_rollouts.SceneItem(
                source,
                scenario,
                scene_input.scene_from_scenario(scenario, source),
                unit_keys.get(scenario.scenario_id, 0),
            )

    for item, result in runner.rollouts(items(), seed):
        if isinstance(result, Exception):
            raise rollout_checks.RolloutError(
                item.source, f"{saved_model}: {result}", reason="invalid_rollouts"
            ) from result
        yield (
            item.source,
            item.scenario,
            _checked(saved_model, item.scenario, item.source, *result, fallback_counts),
        )


def _pairs(
    scenarios: dict,
    rollout_pattern: str | None,
    saved_model: str | None,
    seed: int,
    fallback_counts: list,
    batch_size: int = 1,
    share: evaluate_split.Share | None = None,
) -> Iterator[tuple[str, object, object]]:
    """Yields (source, Scenario, ScenarioRollouts), all validated (--saved_model: each
    scenario's fallback counts appended to `fallback_counts`). With a `share` of a split run,
    `scenarios` are this task's and other tasks' rollouts are passed over."""
    if saved_model and batch_size > 1:
        keys = share.unit_keys if share else {}
        yield from _batched_model_pairs(
            scenarios, saved_model, seed, batch_size, fallback_counts, keys
        )
        return
    if saved_model:  # one scene per call: the per-scenario path of the submission's batch 1
        for _, (source, scenario) in scenarios.items():
            yield (
                source,
                scenario,
                _model_rollouts(saved_model, scenario, seed, source, fallback_counts),
            )
        return
    seen = {}
    for source, rollouts in rollouts_io.read_rollouts(rollout_pattern):
        scenario_id = rollouts.scenario_id
        if share and scenario_id in share.position and scenario_id not in scenarios:
            continue  # another task's scene
        if scenario_id not in scenarios:
            raise rollout_checks.RolloutError(
                source,
                f"unknown id: scenario {scenario_id!r} is not in the --scenarios files "
                f"({len(scenarios)} scenarios)",
                reason="unknown_id",
            )
        if scenario_id in seen:
            raise rollout_checks.RolloutError(
                source,
                f"scenario {scenario_id} appears twice (also in {seen[scenario_id]})",
                reason="duplicate_scenario",
            )
        seen[scenario_id] = source
        scenario = scenarios[scenario_id][1]
        rollout_checks.validate_rollouts(rollouts, scenario, source)
        yield source, scenario, rollouts
    missing = sorted(set(scenarios) - set(seen))
    if missing:
        raise rollout_checks.RolloutError(
            rollout_pattern,
            f"submission is missing {len(missing)} scenario(s) of --scenarios: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}",
            reason="missing_scenario",
        )


def _timed(items: Iterator, timing: dict, key: str) -> Iterator:
    """Passes `items` through, adding the time spent producing them to timing[key]."""
    items = iter(items)
    while True:
        start = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            timing[key] += time.perf_counter() - start
        yield item


def evaluate(
    scenario_pattern: str,
    rollout_pattern: str | None = None,
    saved_model: str | None = None,
    year: str = "2025",
    backend: str = "fast",
    num_workers: int = 1,
    seed: int = 0,
    rollouts_output: str | None = None,
    max_fallback_fraction: float = 0.01,
    batch_size: int = 1,
    images_dir: str | None = None,
    num_images: int = 4,
    task: task_split.TaskSpec | None = None,
    split_output: str | None = None,
) -> dict:
    """Scores every scenario; returns the results dict (see `results.summarize`; history-only
    scenes: see the module doc -- if none is left to score, only `unscored` and
    `rollouts_output`, with `num_scenarios` 0).

    `timing` in the result: seconds reading the scenarios, reading + validating (+ generating,
    with a saved model) the rollouts (`decode`), and for the fast backend the summed
    per-process seconds converting protos to arrays, compiling and computing the features.

    `fallback` in the result (--saved_model): constant-velocity fallback counts, see the module
    doc; also printed, with a warning above `max_fallback_fraction` of the sim agents.

    A split `task` scores only its share (motion_sim/evaluate_split.py) and returns its part
    (no aggregate), or `{"part_done": path}` when the part of `split_output` is already there.
    """
    if (rollout_pattern is None) == (saved_model is None):
        raise ValueError("give exactly one of rollouts / saved_model")
    config = config_lib.load_config(year)
    runner = backend_lib.make_backend(backend, config, num_workers)  # a bad name fails first
    start = time.time()
    scenarios = {}
    for source, scenario in rollouts_io.read_scenarios(scenario_pattern):
        scenarios.setdefault(scenario.scenario_id, (source, scenario))
    share = plan = None
    if task and task.is_split:
        if not split_output:
            raise ValueError("a split task needs split_output (the final --output)")
        share = evaluate_split.share_of(scenarios, task, batch_size if saved_model else 1)
        plan = evaluate_split.make_plan(
            list(scenarios), task, year, backend, saved_model, rollout_pattern, seed, batch_size
        )
        if evaluate_split.part_done(split_output, task, plan):
            return {"part_done": str(evaluate_split.part_path(split_output, task))}
        scenarios = {k: v for k, v in scenarios.items() if k in share.owned}
    fallback_counts = []
    generated, unscored = _history_only_rollouts(scenarios, saved_model, seed, fallback_counts)
    timing = {"read_scenarios": time.time() - start, "decode": 0.0}
    logging.info("%d scenarios from %s", len(scenarios), scenario_pattern)
    pairs = _timed(
        _pairs(scenarios, rollout_pattern, saved_model, seed, fallback_counts, batch_size, share),
        timing,
        "decode",
    )
    drawn = []

    def keep_for_images(pairs):  # the first scenes are drawn after scoring (--images_dir)
        for pair in pairs:
            if len(drawn) < num_images:
                drawn.append(pair)
            yield pair

    if images_dir:
        pairs = keep_for_images(pairs)

    def keep(pairs):  # the scored scenes' rollouts go to --rollouts_output too
        for source, scenario, rollouts in pairs:
            generated.append(rollouts)
            yield source, scenario, rollouts

    pairs = keep(pairs) if rollouts_output else pairs
    start = time.time()
    scored = runner.map(pairs)
    # Streams: one scenario at a time (a bounded window with workers), ETA from tqdm.
    per_scenario = list(
        tqdm.tqdm(
            scored,
            total=len(scenarios),
            desc=f"WOSAC {backend}{f' {task.name()}' if share else ''}",
            unit="scenario",
            disable=None,
            dynamic_ncols=True,
        )
    )
    if rollouts_output:
        history_only.write_rollouts(rollouts_output, generated)
    if images_dir:
        from motion_sim.viz import image_files  # pylint: disable=import-outside-toplevel

        results_images = image_files.write_rollout_images(drawn, images_dir)
    no_aggregate = (unscored and not per_scenario) or share is not None
    results = {} if no_aggregate else results_lib.summarize(config, per_scenario)
    if share:  # a part: the merge aggregates every task's scenes at once
        results.update(evaluate_split.part_fields(share, per_scenario, plan, task))
    results.update(unscored=unscored, rollouts_output=rollouts_output)
    timing.update(runner.stats)  # the fast backend's parts (the official one has none)
    results.update(
        config=year,
        backend=backend,
        num_scenarios=len(per_scenario),
        seconds=time.time() - start,
        num_workers=num_workers,
        timing=timing,
    )
    if images_dir:
        results["images"] = results_images
    if saved_model:
        results["fallback"] = results_lib.fallback_summary(fallback_counts)
        results_lib.report_fallback(results["fallback"], saved_model, max_fallback_fraction)
    return results


def _history_only_rollouts(
    scenarios: dict, saved_model: str | None, seed: int, fallback_counts: list
):
    """Removes the history-only scenes from `scenarios`; returns their validated rollouts by
    `saved_model` and their `unscored` entries. With --rollouts they are an error."""
    generated, unscored = [], []
    for scenario_id, (source, scenario) in list(scenarios.items()):
        if not history_only.is_history_only(scenario):
            continue
        if not saved_model:
            raise history_only.no_future_error(source, scenario_id)
        generated.append(_model_rollouts(saved_model, scenario, seed, source, fallback_counts))
        unscored.append(
            {
                "scenario_id": scenario_id,
                "source": source,
                "reason": "no logged future to score against (history-only)",
            }
        )
        del scenarios[scenario_id]
        logging.warning(
            "%s: scenario %s is history-only: rollouts generated, not scored", source, scenario_id
        )
    return generated, unscored


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not FLAGS.scenarios or not FLAGS.output:
        raise app.UsageError("--scenarios and --output are required")
    if (FLAGS.rollouts is None) == (FLAGS.saved_model is None):
        raise app.UsageError("give exactly one of --rollouts / --saved_model")
    try:
        task = task_split.task_from_flags_or_cluster(FLAGS.task_index, FLAGS.num_tasks)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    output = pathlib.Path(FLAGS.output)
    written = evaluate_split.part_path(output, task) if task.is_split else output
    try:  # before scoring: an unwritable output must not lose the scores at the very end
        results_lib.check_writable(written)
        results_lib.check_writable(output.with_suffix(".md"))
    except OSError as e:
        print(f"evaluate: error: --output {e}", file=sys.stderr)
        return 2
    # One writer per task of a split run (the tasks share FILE.parts/).
    lock = run_lock.RunLock(str(written.parent), "evaluate", f".motion_sim.{task.name()}.lock")
    try:
        with lock if task.is_split else contextlib.nullcontext():
            results = evaluate(
                FLAGS.scenarios,
                FLAGS.rollouts,
                FLAGS.saved_model,
                FLAGS.config,
                FLAGS.backend,
                FLAGS.num_workers,
                FLAGS.seed,
                evaluate_split.rollouts_shard(FLAGS.rollouts_output, task) or FLAGS.rollouts_output,
                FLAGS.max_fallback_fraction,
                FLAGS.batch_size,
                FLAGS.images_dir,
                FLAGS.num_images,
                task,
                str(output),
            )
            if task.is_split and "part_done" not in results:
                evaluate_split.write_part(output, results)
    except rollout_checks.RolloutError as e:
        print(f"evaluate: bad input: {e}", file=sys.stderr)
        return 2
    except (evaluate_split.PartError, run_lock.RunLockError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        return 2
    if task.is_split:
        done = "was already done" if "part_done" in results else "done"
        print(
            f"evaluate: {task.name()} {done} ({written}); once every task is, run "
            f"`python -m motion_sim.evaluate merge --output={output}`"
        )
        return 0
    return results_lib.write_run_outputs(results, output, FLAGS.method_name)


def define_merge_flags() -> None:
    """The flags of `evaluate merge` (instead of `define_flags`)."""
    flags.DEFINE_string("output", None, "The split run's --output (its parts: FILE.parts/).")
    flags.DEFINE_string("method_name", None, "Row name in FILE.md (default: the file stem).")
    flags.DEFINE_float("max_fallback_fraction", 0.01, "Warn above this fallback fraction.")
    flags.mark_flag_as_required("output")


def merge_main(argv):
    """`python -m motion_sim.evaluate merge --output=FILE.json`: FILE.json from FILE.parts/."""
    if len(argv) > 2:
        raise app.UsageError(f"unexpected arguments {argv[2:]}")
    output = pathlib.Path(FLAGS.output)
    try:
        results = evaluate_split.merge(output)
    except evaluate_split.PartError as e:
        print(f"evaluate merge: error: {e}", file=sys.stderr)
        return 2
    if "fallback" in results:
        results_lib.report_fallback(results["fallback"], "the model", FLAGS.max_fallback_fraction)
    return results_lib.write_run_outputs(results, output, FLAGS.method_name)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if len(sys.argv) > 1 and sys.argv[1] == "merge":
        define_merge_flags()
        app.run(merge_main)
    else:
        define_flags()
        app.run(main)
