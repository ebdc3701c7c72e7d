r"""Preprocess WOMD / GPUDrive scenarios into sharded TFRecords of serialized `Scene`s.

    python -m motion_sim.data.preprocess --input='gs://.../training.tfrecord-*' \
        --output_dir=/data/scenes/train --format=scenario --num_workers=8

Writes `<unit>-NNNNN.tfrecord.gz` shards (one unit per input TFRecord file, or per
`--shard_size` GPUDrive JSON files), a `<unit>.stats.json` beside each finished unit, `plan.json`
(the flags and inputs of the run) and a merged `stats.json` listing exactly the shards present.

Reliability rules (docs/reliability.md):
  * Resume: rerunning with the same inputs and flags skips finished units. A unit's name carries
    a tag over its inputs (path, size, mtime) and the flags that decide its output, so a rerun
    with another --format / --compression, a regenerated or added input (GPUDrive grouping) finds
    the earlier plan's shards and refuses to mix them, saying what changed and how to start fresh.
  * One writer: the output directory is locked (`motion_sim.data.run_lock`) for the run.
  * Bad input: a scenario that fails to parse or validate is skipped and counted by reason; any
    other exception on one record is skipped and counted as `unexpected_<Type>` naming
    file:record; a corrupt, unreadable or directory input fails its unit (named in the error and
    in `stats.json["failed_units"]`). The other units still finish, stats.json is written and the
    exit status is 1. Zero scenes written (empty input, wrong --format) also exits 1.
  * Duplicates: a repeated scenario id keeps its first copy (plan order); later copies are
    dropped and counted as `duplicate_scenario_id`. A scene whose object ids repeat is skipped
    (`duplicate_object_id`, in `scene_builder`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue as queue_module
import sys
import time

import tensorflow as tf
import tqdm
from absl import app, flags, logging

from motion_sim.data import run_lock, shard_writer
from motion_sim.data.datatypes import ScenarioError
from motion_sim.data.tfrecord_io import expand_pattern

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_string("input", None, "Glob(s) of input files, comma-separated; local or gs://.")
    flags.DEFINE_string("output_dir", None, "Directory for scene shards and stats.json.")
    flags.DEFINE_enum(
        "format",
        "scenario",
        list(shard_writer.FORMATS),
        "scenario: Scenario protos; example: WOMD motion tf.Examples; "
        "gpudrive: GPUDrive/Nocturne JSON files.",
    )
    flags.DEFINE_integer("num_workers", 1, "Worker processes (spawned); 1 runs in-process.")
    flags.DEFINE_integer("shard_size", 256, "Scenes per output shard.")
    flags.DEFINE_enum(
        "compression",
        "GZIP",
        ["GZIP", "NONE"],
        "Output compression; padding makes scenes compress ~5x.",
    )
    flags.mark_flags_as_required(["input", "output_dir"])


PLAN_NAME = "plan.json"


class _QueueProgress:
    """Picklable progress callback for spawn workers: forwards input bytes to the parent."""

    def __init__(self, queue):
        self.queue = queue

    def __call__(self, num_bytes: int) -> None:
        self.queue.put(num_bytes)


def _run_unit(unit, output_dir, fmt, shard_size, compression, progress):
    """(unit name, error message or None, reason or None): any exception fails only its unit,
    named by the error (file:record) and counted under a reason."""
    try:
        shard_writer.process_unit(unit, output_dir, fmt, shard_size, compression, progress)
        return unit.name, None, None
    except ScenarioError as e:
        return unit.name, str(e), e.reason
    except OSError as e:  # missing (dangling link, deleted meanwhile) or unreadable input
        return unit.name, f"{', '.join(unit.paths)}: cannot read ({e})", "unreadable"
    except Exception as e:  # noqa: BLE001 -- one unit's failure must not stop the batch
        return (
            unit.name,
            f"{', '.join(unit.paths)}: {type(e).__name__}: {e}",
            f"unexpected_{type(e).__name__}",
        )


class _Progress:
    """tqdm over input bytes (so the ETA holds before record counts are known), with the
    scenario count and scenario rate as postfix. Called once per scenario read."""

    def __init__(self, total_bytes: int):
        self.bar = tqdm.tqdm(
            total=total_bytes,
            unit="B",
            unit_scale=True,
            desc="preprocess",
            file=sys.stderr,
            smoothing=0.1,
        )
        self.scenarios, self.start = 0, time.time()

    def __call__(self, num_bytes: int) -> None:
        self.scenarios += 1
        self.bar.update(num_bytes)
        rate = self.scenarios / max(time.time() - self.start, 1e-9)
        self.bar.set_postfix(scenarios=self.scenarios, scenarios_per_s=f"{rate:.1f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def _run_units(units: list, job: tuple, num_workers: int, progress: _Progress) -> dict:
    """Runs the units (in-process or in a spawn pool); returns {unit name: (error, reason)} of
    the failures."""
    if num_workers == 1 or len(units) <= 1:
        results = [_run_unit(unit, *job, progress) for unit in units]
    else:
        # spawn: TensorFlow is not fork-safe once initialised.
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(num_workers) as pool:
            queue = manager.Queue()
            pending = [
                pool.apply_async(_run_unit, (unit, *job, _QueueProgress(queue))) for unit in units
            ]
            results = []
            while pending:
                try:
                    progress(queue.get(timeout=0.2))
                except queue_module.Empty:
                    pass
                for result in [r for r in pending if r.ready()]:
                    pending.remove(result)
                    results.append(result.get())
            while not queue.empty():
                progress(queue.get())
    failed = {name: (error, reason) for name, error, reason in results if error is not None}
    for name, (error, _) in failed.items():
        logging.error("unit %s failed: %s", name, error)
    return failed


class StaleOutputError(ValueError):
    """The output directory holds shards of an earlier plan; the message says what changed."""


def _plan_record(fmt: str, compression: str, shard_size: int, files: list[str]) -> dict:
    """What plan.json records: the flags in a unit's identity and every input's key."""
    return {
        "format": fmt,
        "compression": compression,
        "shard_size": int(shard_size) if fmt == "gpudrive" else None,
        "inputs": {p: shard_writer.input_key(p) for p in files},
    }


def _describe_change(old: dict, new: dict) -> str:
    """What differs between two plan records, in words ("format 'example' -> 'scenario'")."""
    changes = [
        f"{k} {old.get(k)!r} -> {new[k]!r}"
        for k in ("format", "compression", "shard_size")
        if old.get(k) != new[k]
    ]
    old_inputs, new_inputs = old.get("inputs", {}), new["inputs"]
    for what, paths in (
        ("added", sorted(set(new_inputs) - set(old_inputs))),
        ("removed", sorted(set(old_inputs) - set(new_inputs))),
        (
            "changed (size/mtime)",
            sorted(
                p
                for p in set(old_inputs) & set(new_inputs)
                if list(old_inputs[p]) != list(new_inputs[p])
            ),
        ),
    ):
        if paths:
            changes.append(
                f"{len(paths)} input(s) {what}: {', '.join(paths[:3])}"
                f"{' ...' if len(paths) > 3 else ''}"
            )
    return "; ".join(changes) or "the inputs or flags"


def _check_stale(output_dir: str, units: list, plan: dict) -> None:
    """Refuses to mix: shards of an earlier plan would be read beside this plan's.

    Stale units that wrote no shard are removed silently (nothing to mix, nothing lost), so a run
    with the wrong --format can simply be rerun with the right one.
    """
    stale = shard_writer.stale_outputs(output_dir, units)
    for name in [n for n in stale if n.endswith(shard_writer.STATS_SUFFIX)]:
        with tf.io.gfile.GFile(os.path.join(output_dir, name)) as f:
            try:
                written = json.load(f).get("output_files")
            except ValueError:
                written = None
        if written == []:
            tf.io.gfile.remove(os.path.join(output_dir, name))
            stale.remove(name)
    if not stale:
        return
    old = {}
    plan_path = os.path.join(output_dir, PLAN_NAME)
    if tf.io.gfile.exists(plan_path):
        with tf.io.gfile.GFile(plan_path) as f:
            old = json.load(f)
    raise StaleOutputError(
        f"{output_dir} holds {len(stale)} file(s) from an earlier preprocess run with other "
        f"inputs or flags ({_describe_change(old, plan)}; e.g. {stale[0]}); they would be read "
        f"beside the new shards. Start fresh: use a new --output_dir, or delete {output_dir}"
    )


def run(
    input_pattern: str,
    output_dir: str,
    fmt: str,
    num_workers: int = 1,
    shard_size: int = 256,
    compression: str = "GZIP",
) -> dict:
    """Library entry point of the CLI; returns the merged stats (also written to stats.json).

    Raises:
      ValueError: bad flags; StaleOutputError: `output_dir` holds another plan's shards.
      FileNotFoundError: nothing matches `input_pattern`.
      run_lock.RunLockError: another run writes `output_dir`, or it cannot be written.
    """
    if fmt not in shard_writer.FORMATS:
        raise ValueError(
            f"unknown --format {fmt!r}; expected one of {', '.join(shard_writer.FORMATS)}"
        )
    if shard_size < 1 or num_workers < 1:
        raise ValueError("--shard_size and --num_workers must be >= 1")
    files = expand_pattern(input_pattern)
    with run_lock.RunLock(output_dir, "preprocess"):
        units = shard_writer.plan_units(files, fmt, shard_size, compression)
        plan = _plan_record(fmt, compression, shard_size, files)
        _check_stale(output_dir, units, plan)
        shard_writer.write_json_atomic(os.path.join(output_dir, PLAN_NAME), plan)
        return _run_plan(
            input_pattern, output_dir, fmt, num_workers, shard_size, compression, files, units
        )


def _run_plan(
    input_pattern, output_dir, fmt, num_workers, shard_size, compression, files, units
) -> dict:
    done, todo = [], []
    for unit in units:
        (
            done if tf.io.gfile.exists(shard_writer.unit_stats_path(output_dir, unit)) else todo
        ).append(unit)
    logging.info(
        "%d input files -> %d units: %d already done, %d to do",
        len(files),
        len(units),
        len(done),
        len(todo),
    )
    progress = _Progress(sum(shard_writer.input_bytes(u) for u in todo))
    try:
        failed = _run_units(todo, (output_dir, fmt, shard_size, compression), num_workers, progress)
    finally:
        progress.close()
    finished, per_unit = [], []
    for unit in units:
        path = shard_writer.unit_stats_path(output_dir, unit)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                per_unit.append(json.load(f))
            finished.append(unit)
    shard_writer.drop_duplicate_scenarios(output_dir, finished, per_unit)
    stats = shard_writer.merge_stats(per_unit)
    failed_reasons = {}
    for _, reason in failed.values():
        failed_reasons[reason] = failed_reasons.get(reason, 0) + 1
    stats.update(
        format=fmt,
        input=input_pattern,
        units_total=len(units),
        units_skipped_as_done=len(done),
        units_processed=len(todo) - len(failed),
        failed_units={name: error for name, (error, _) in failed.items()},
        failed_unit_reasons=failed_reasons,
    )
    shard_writer.write_json_atomic(os.path.join(output_dir, "stats.json"), stats)
    return stats


def main(argv) -> int:
    del argv
    try:
        stats = run(
            FLAGS.input,
            FLAGS.output_dir,
            FLAGS.format,
            FLAGS.num_workers,
            FLAGS.shard_size,
            FLAGS.compression,
        )
    except (FileNotFoundError, ValueError, run_lock.RunLockError) as e:
        print(f"preprocess: error: {e}", file=sys.stderr)
        return 2
    summary = {
        k: stats[k]
        for k in (
            "scenarios_read",
            "scenarios_written",
            "skipped",
            "history_only",
            "sdc_inferred",
            "defaults_applied",
            "agents_kept",
            "agents_dropped",
            "token_reconstruction_error_m",
            "failed_units",
        )
    }
    print(json.dumps(summary))
    status = 0
    for reason, count in sorted(stats["skipped"].items()):
        if shard_writer.is_failure(reason):
            example = stats["skipped_examples"].get(reason, ["?"])[0]
            print(
                f"preprocess: {count} scenario(s) failed ({reason}), e.g. {example}",
                file=sys.stderr,
            )
            status = 1
    if stats["failed_units"]:
        for name, error in stats["failed_units"].items():
            print(f"preprocess: unit {name} failed: {error}", file=sys.stderr)
        status = 1
    if stats["scenarios_written"] == 0:
        # Exit 0 with nothing written hides a wrong --format or an empty input.
        why = (
            f"every one of the {stats['scenarios_read']} scenarios read was skipped "
            f"({stats['skipped']}); is --format={FLAGS.format} right for these files?"
            if stats["scenarios_read"]
            else "the input files hold no records"
        )
        print(f"preprocess: error: no scenes written from {FLAGS.input}: {why}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    define_flags()
    app.run(main)
