r"""Writes a WOSAC (Sim Agents Challenge) submission from a sim-agent SavedModel.

    python -m export.wosac_submission --saved_model=DIR --scenarios='test/*.tfrecord*' \
      --output_dir=OUT --account_name=me@example.com --method_name=my_method \
      --authors=A,B --affiliation=Lab --description='...' --method_link=https://... \
      --num_model_parameters=1.2M --uses_lidar_data=false --uses_camera_data=false \
      --uses_public_model_pretraining=false \
      --acknowledge_complies_with_closed_loop_requirement=true [--shard_size=16 --seed=0]

Output in OUT: `submission.binproto-KKKKK-of-NNNNN` shards (each a full
`SimAgentsChallengeSubmission` with the metadata), `submission.tar.gz` of them (the file to
upload), `plan.json`, per-shard `*.stats.json` and `stats.json` (scenarios written/skipped,
history-only scenes, sim agents, and how many of them the constant-velocity fallback drove:
those beyond the model's `MAX_AGENTS`). The input is the WOMD test split (history only: 11
steps); full 91-step scenes work too. Every scenario passes
`submission_specs.validate_scenario_rollouts` before it is written. Re-running the same command
after an interruption skips the shards already written; the plan is keyed by content (the
SavedModel's fingerprint, a sha256 of every input), so a model re-exported into the same
directory or a regenerated input is refused, not mixed. One writer per --output_dir and task (a
lock naming its holder). A scenario id that repeats across the inputs keeps its first copy;
later ones are skipped as `duplicate_scenario_id`. Bad records are skipped, counted and
named (file:record); more than --max_skipped of them fails the run without a tarball, because
the challenge server rejects a submission that misses scenarios.

At scale: `--batch_size=B` runs B scenes per model call on every replica of the strategy
(`motion_sim.learner.strategy.get_strategy`: every local GPU), and a job split over hosts or
processes runs each task with `--task_index=t --num_tasks=N` (or a TF_CONFIG cluster) into one
shared --output_dir; task t writes the shards k with k % N == t. Then, once:

    python -m export.wosac_submission merge --output_dir=OUT

checks that every shard is there and was checked (each task checks the shards it writes --
parses, counts match its stats, 32 rollouts of one object set, 80 finite steps -- and then
compresses it into a tar fragment) and that no scenario appears twice, then concatenates the
fragments into the one tarball (a copy, no compression). The progress bar shows scenes/s and
the ETA.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags, logging
from tqdm import tqdm
from waymo_open_dataset.protos import sim_agents_submission_pb2

from export import (
    batched_rollouts,
    loader,
    scene_input,
    submission_merge,
    submission_shards,
    task_split,
)
from export.submission_merge import finalize, merge  # public here: the CLI's two steps
from export.submission_metadata import define_metadata_flags, submission_metadata
from motion_sim.data import run_lock, scenario_reader
from motion_sim.data.datatypes import MAX_AGENTS, NUM_HISTORY_STEPS, ScenarioError

_REQUIRED = ("saved_model", "scenarios", "output_dir")


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_string("saved_model", None, "Sim-agent SavedModel directory.")
    flags.DEFINE_string(
        "scenarios", None, "Glob(s), comma-separated, of Scenario-proto TFRecord files."
    )
    flags.DEFINE_string("output_dir", None, "Directory for shards and the tarball.")
    flags.DEFINE_integer("shard_size", 16, "Scenarios per shard (~4 MB each).")
    flags.DEFINE_integer("seed", 0, "Base seed; each scenario derives its own from it.")
    flags.DEFINE_integer("max_skipped", 0, "Skipped scenarios tolerated before the run fails.")
    flags.DEFINE_integer(
        "batch_size",
        1,
        "Scenes per model call per replica (padded to this "
        "size; part of the plan: 1 reproduces per-scenario seeds).",
    )
    flags.DEFINE_integer(
        "task_index",
        None,
        "This task of a split job (with --num_tasks; default: TF_CONFIG's task, else 0 of 1).",
    )
    flags.DEFINE_integer(
        "num_tasks",
        None,
        "Tasks of a split job: task t writes shards k with k % num_tasks == t; then run `merge`.",
    )
    define_metadata_flags()
    flags.mark_flags_as_required(_REQUIRED)


def _empty_shard_stats() -> dict:
    return {
        "scenarios_written": 0,
        "scenarios_skipped": 0,
        "skipped": [],
        "history_only_scenarios": 0,
        "sim_agents": 0,
        "model_agents": 0,
        "fallback_agents": 0,
        "scenarios_with_fallback": 0,
    }


class _ShardCollector:
    """Collects each shard's rollouts and stats as results arrive; writes a shard as soon as all
    of its records are accounted for (written or skipped)."""

    def __init__(
        self, output_dir: str, plan: submission_shards.ShardPlan, metadata: dict, bar: tqdm
    ):
        self.output_dir, self.plan, self.metadata, self.bar = output_dir, plan, metadata, bar
        self._open: dict[int, tuple[list, dict, list]] = {}  # k -> (rollouts, stats, [seen])
        self.written: list[int] = []

    def _shard(self, k: int):
        if k not in self._open:
            self._open[k] = ([], _empty_shard_stats(), [0])
        return self._open[k]

    def skip(self, k: int, source: str, error: Exception) -> None:
        reason = getattr(error, "reason", "invalid_rollouts")
        logging.warning("skipping %s: %s", source, error)
        _, stats, seen = self._shard(k)
        stats["scenarios_skipped"] += 1
        stats["skipped"].append({"source": source, "reason": reason, "error": str(error)})
        self._done_one(k, seen)

    def add(self, k: int, scenario, scenario_rollouts, counts) -> None:
        rollouts, stats, seen = self._shard(k)
        rollouts.append(scenario_rollouts)
        stats["scenarios_written"] += 1
        stats["sim_agents"] += counts.num_sim_agents
        stats["model_agents"] += counts.num_model_agents
        stats["fallback_agents"] += counts.num_fallback_agents
        stats["scenarios_with_fallback"] += int(counts.num_fallback_agents > 0)
        stats["history_only_scenarios"] += int(
            len(scenario.timestamps_seconds) == NUM_HISTORY_STEPS
        )
        self._done_one(k, seen)

    def _done_one(self, k: int, seen: list) -> None:
        seen[0] += 1
        self.bar.update(1)
        if seen[0] == self.plan.shard_count(k):
            self._flush(k)

    def _flush(self, k: int) -> None:
        rollouts, stats, _ = self._open.pop(k)
        submission = sim_agents_submission_pb2.SimAgentsChallengeSubmission(
            scenario_rollouts=rollouts,
            submission_type=sim_agents_submission_pb2.SimAgentsChallengeSubmission.SIM_AGENTS_SUBMISSION,
            **self.metadata,
        )
        shard_path = os.path.join(self.output_dir, self.plan.shard_name(k))
        stats["scenario_ids"] = [r.scenario_id for r in rollouts]
        fragment = os.path.join(
            self.output_dir, submission_shards.fragment_name(self.plan.shard_name(k))
        )
        if os.path.exists(fragment):  # from a shard deleted to be redone: never stale
            os.remove(fragment)
        # Stats first: a renamed shard always has its stats beside it.
        submission_shards.write_json_atomic(shard_path + ".stats.json", stats)
        submission_shards.write_atomic(shard_path, submission.SerializeToString())
        # Checked and compressed here, by the task that wrote it (tasks run in parallel; the
        # merge only copies): its tarball fragment exists only once the check passed.
        submission_merge.check_shard(self.output_dir, self.plan, k)
        submission_shards.write_fragment(self.output_dir, self.plan.shard_name(k))
        self.written.append(k)


def write_submission(
    saved_model: str,
    scenarios: str,
    output_dir: str,
    metadata: dict,
    shard_size: int = 16,
    seed: int = 0,
    max_skipped: int = 0,
    batch_size: int = 1,
    task: task_split.TaskSpec | None = None,
    strategy=None,
) -> dict:
    """Runs the job (or this task's share of it); returns the totals.

    Args:
      batch_size: scenes per model call per replica (`export/batched_rollouts.py`). 1 gives
        the per-scenario seeds of `saved_model_rollouts.generate_scenario_rollouts`; another
        value other, equally valid samples, and is part of the plan.
      task: this task of a split job (default: the only one). A split task writes only the
        shards it owns (k % count == index) into `output_dir` (shared by all tasks) and no
        tarball; `merge` packs the tarball once every task is done.
      strategy: `tf.distribute` strategy the model runs under (default: `get_strategy()`).

    Raises:
      run_lock.RunLockError: another run writes `output_dir` (as this task), or it cannot be
        written.
      loader.SimAgentLoadError: the SavedModel cannot be loaded.
      ScenarioError / FileNotFoundError: an input file is missing or not a TFRecord.
      RuntimeError: more than `max_skipped` scenarios were skipped (no tarball is written).
    """
    task = task or task_split.TaskSpec()
    # One writer per output directory -- per task of a split job, whose tasks share it.
    lock_name = f".motion_sim.{task.name()}.lock" if task.is_split else run_lock.LOCK_NAME
    with run_lock.RunLock(output_dir, "submission", lock_name=lock_name):
        return _write_submission(
            saved_model,
            scenarios,
            output_dir,
            metadata,
            shard_size,
            seed,
            max_skipped,
            batch_size,
            task,
            strategy,
        )


def _write_submission(
    saved_model,
    scenarios,
    output_dir,
    metadata,
    shard_size,
    seed,
    max_skipped,
    batch_size,
    task,
    strategy,
) -> dict:
    """The job itself, under the output directory's lock."""
    start = time.time()
    runner = batched_rollouts.BatchedRollouts(saved_model, batch_size, strategy)
    if runner.num_rollouts != 32:
        raise ValueError(
            f"{saved_model}: exports {runner.num_rollouts} rollouts per scenario; "
            "WOSAC needs 32 (re-export with num_rollouts=32)"
        )
    # Keyed by content, not path: a model re-exported into the same directory must not resume
    # the shards of the one it replaced.
    settings = {
        "saved_model": submission_shards.saved_model_key(saved_model),
        "seed": int(seed),
        "metadata": metadata,
    }
    if batch_size != 1:  # batch 1 keeps the plans (and samples) of earlier runs valid
        settings["batch_size"] = int(batch_size)
    plan = submission_shards.make_plan(scenarios, shard_size, settings)
    if plan.num_scenarios == 0:
        raise ValueError(f"{scenarios}: the matching files hold no records")
    resumed = submission_shards.check_or_write_plan(output_dir, plan)
    owned = [k for k in range(plan.num_shards) if task.owns(k)]
    finished = {k for k in owned if os.path.exists(os.path.join(output_dir, plan.shard_name(k)))}
    logging.info(
        "%d scenarios in %d files -> %d shards; task %d of %d owns %d, %d already "
        "written%s; %d replica(s) x %d scenes per call",
        plan.num_scenarios,
        len(plan.files),
        plan.num_shards,
        task.index,
        task.count,
        len(owned),
        len(finished),
        " (resuming)" if resumed else "",
        runner.num_replicas,
        batch_size,
    )

    todo = [k for k in owned if k not in finished]
    bar = tqdm(
        total=sum(plan.shard_count(k) for k in todo),
        unit="scene",
        dynamic_ncols=True,
        desc=f"WOSAC rollouts{f' {task.name()}' if task.is_split else ''}",
        file=sys.stderr,
        smoothing=0.1,
    )
    shards = _ShardCollector(output_dir, plan, metadata, bar)
    todo_set = set(todo)

    def items():
        for index, source, serialized in submission_shards.iter_planned_records(plan):
            k = plan.shard_of(index)
            if k not in todo_set:
                continue
            try:
                if index in plan.duplicates:
                    raise ScenarioError(
                        source, plan.duplicates[index], reason="duplicate_scenario_id"
                    )
                scenario = scenario_reader.parse_scenario_bytes(serialized, source)
                inputs = scene_input.scene_from_scenario(scenario, source)
            except (ScenarioError, ValueError) as e:
                shards.skip(k, source, e)
                continue
            yield batched_rollouts.SceneItem(source, scenario, inputs, key=k)

    for item, result in runner.rollouts(items(), seed):  # a model failure raises RuntimeError
        if isinstance(result, Exception):
            shards.skip(item.key, item.source, result)
        else:
            shards.add(item.key, item.scenario, *result)
    bar.close()
    elapsed = time.time() - start
    done = sum(plan.shard_count(k) for k in shards.written)
    logging.info(
        "%d scenes in %.1f s (%.2f scenes/s) in %d model calls",
        done,
        elapsed,
        done / max(elapsed, 1e-9),
        runner.calls,
    )
    if task.is_split:
        totals = submission_merge.aggregate(output_dir, plan, owned)
        totals.update(
            seconds=round(elapsed, 1),
            resumed=resumed,
            task=task.name(),
            shards_written_this_run=len(shards.written),
        )
        submission_shards.write_json_atomic(
            os.path.join(output_dir, f"stats.{task.name()}.json"), totals
        )
        logging.info(
            "task %s done; pack the tarball with `python -m export.wosac_submission "
            "merge --output_dir=%s` once every task is",
            task.name(),
            output_dir,
        )
        return totals
    totals = finalize(output_dir, plan, max_skipped)
    totals.update(
        seconds=round(elapsed, 1), resumed=resumed, shards_written_this_run=len(shards.written)
    )
    submission_shards.write_json_atomic(os.path.join(output_dir, "stats.json"), totals)
    return totals


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = flags.FLAGS.flag_values_dict()
    if values["num_model_parameters"] is None:
        # Trained-model exports record their size; baselines and foreign models must say it.
        try:
            count = loader.read_sim_agent_info(values["saved_model"]).get("num_model_parameters")
        except loader.SimAgentLoadError as e:
            raise app.UsageError(str(e)) from e
        if count is None:
            raise app.UsageError(
                "--num_model_parameters is required: the SavedModel has no "
                f"{loader.INFO_FILE} recording it"
            )
        values["num_model_parameters"] = str(count)
    metadata = submission_metadata(values)
    try:
        task = task_split.task_from_flags_or_cluster(values["task_index"], values["num_tasks"])
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    try:
        totals = write_submission(
            values["saved_model"],
            values["scenarios"],
            values["output_dir"],
            metadata,
            values["shard_size"],
            values["seed"],
            values["max_skipped"],
            values["batch_size"],
            task,
        )
    except (
        loader.SimAgentLoadError,
        ScenarioError,
        FileNotFoundError,
        ValueError,
        RuntimeError,
    ) as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(coverage_line(totals), file=sys.stderr)
    print(json.dumps({k: v for k, v in totals.items() if k != "skipped"}, sort_keys=True))


def merge_main(argv) -> None:
    """`python -m export.wosac_submission merge --output_dir=OUT [--max_skipped=N]`."""
    if len(argv) > 2:
        raise app.UsageError(f"unexpected arguments: {argv[2:]}")
    try:
        totals = merge(flags.FLAGS.output_dir, flags.FLAGS.max_skipped)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(coverage_line(totals), file=sys.stderr)
    print(json.dumps({k: v for k, v in totals.items() if k != "skipped"}, sort_keys=True))


def coverage_line(totals: dict) -> str:
    """One line on who drives the official sim agents, printed at the end of a run."""
    return (
        f"wosac_submission: {totals.get('scenarios_written', 0)} scenarios "
        f"({totals.get('history_only_scenarios', 0)} history-only) cover "
        f"{totals.get('sim_agents', 0)} sim agents: {totals.get('model_agents', 0)} by the "
        f"model, {totals.get('fallback_agents', 0)} by the constant-velocity fallback (agents "
        f"beyond the model's {MAX_AGENTS}, in {totals.get('scenarios_with_fallback', 0)} "
        f"scenarios)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "merge":
        flags.DEFINE_string("output_dir", None, "The split job's shared output directory.")
        flags.DEFINE_integer("max_skipped", 0, "Skipped scenarios tolerated.")
        flags.mark_flag_as_required("output_dir")
        app.run(merge_main)
    else:
        define_flags()
        app.run(main)
