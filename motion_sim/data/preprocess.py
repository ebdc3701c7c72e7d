r"""Preprocess WOMD / GPUDrive scenarios into sharded TFRecords of serialized `Scene`s.

    python -m motion_sim.data.preprocess --input='gs://.../training.tfrecord-*' \
        --output_dir=/data/scenes/train --format=scenario --num_workers=8

Writes `<unit>-NNNNN.tfrecord.gz` shards (one unit per input TFRecord file, or per
`--shard_size` GPUDrive JSON files), a `<unit>.stats.json` beside each finished unit, and a
merged `stats.json`. Rerunning with the same flags skips finished units (resume). Bad scenarios
are skipped and counted by reason; a corrupt TFRecord file fails its unit (named in the error and
in `stats.json["failed_units"]`), the other units still finish, and the exit status is 1.
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

from motion_sim.data import shard_writer
from motion_sim.data.datatypes import ScenarioError
from motion_sim.data.tfrecord_io import expand_pattern

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Glob(s) of input files, comma-separated; local or gs://.")
flags.DEFINE_string("output_dir", None, "Directory for scene shards and stats.json.")
flags.DEFINE_enum("format", "scenario", list(shard_writer.FORMATS),
                  "scenario: Scenario protos; example: WOMD motion tf.Examples; "
                  "gpudrive: GPUDrive/Nocturne JSON files.")
flags.DEFINE_integer("num_workers", 1, "Worker processes (spawned); 1 runs in-process.")
flags.DEFINE_integer("shard_size", 256, "Scenes per output shard.")
flags.DEFINE_enum("compression", "GZIP", ["GZIP", "NONE"],
                  "Output compression; padding makes scenes compress ~5x.")
flags.mark_flags_as_required(["input", "output_dir"])


class _QueueProgress:
    """Picklable progress callback for spawn workers: forwards input bytes to the parent."""

    def __init__(self, queue):
        self.queue = queue

    def __call__(self, num_bytes: int) -> None:
        self.queue.put(num_bytes)


def _run_unit(unit, output_dir, fmt, shard_size, compression, progress):
    """(unit name, error message or None); a corrupt TFRecord fails only its unit."""
    try:
        shard_writer.process_unit(unit, output_dir, fmt, shard_size, compression, progress)
        return unit.name, None
    except ScenarioError as e:
        return unit.name, str(e)


class _Progress:
    """tqdm over input bytes (so the ETA holds before record counts are known), with the
    scenario count and scenario rate as postfix. Called once per scenario read."""

    def __init__(self, total_bytes: int):
        self.bar = tqdm.tqdm(total=total_bytes, unit="B", unit_scale=True, desc="preprocess",
                             file=sys.stderr, smoothing=0.1)
        self.scenarios, self.start = 0, time.time()

    def __call__(self, num_bytes: int) -> None:
        self.scenarios += 1
        self.bar.update(num_bytes)
        rate = self.scenarios / max(time.time() - self.start, 1e-9)
        self.bar.set_postfix(scenarios=self.scenarios, scenarios_per_s=f"{rate:.1f}",
                             refresh=False)

    def close(self) -> None:
        self.bar.close()


def _run_units(units: list, job: tuple, num_workers: int, progress: _Progress) -> dict:
    """Runs the units (in-process or in a spawn pool); returns {unit name: error} of failures."""
    if num_workers == 1 or len(units) <= 1:
        results = [_run_unit(unit, *job, progress) for unit in units]
    else:
        # spawn: TensorFlow is not fork-safe once initialised.
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(num_workers) as pool:
            queue = manager.Queue()
            pending = [pool.apply_async(_run_unit, (unit, *job, _QueueProgress(queue)))
                       for unit in units]
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
    failed = {name: error for name, error in results if error is not None}
    for name, error in failed.items():
        logging.error("unit %s failed: %s", name, error)
    return failed


def run(input_pattern: str, output_dir: str, fmt: str, num_workers: int = 1,
        shard_size: int = 256, compression: str = "GZIP") -> dict:
    """Library entry point of the CLI; returns the merged stats (also written to stats.json)."""
    if fmt not in shard_writer.FORMATS:
        raise ValueError(f"unknown --format {fmt!r}; expected one of "
                         f"{', '.join(shard_writer.FORMATS)}")
    if shard_size < 1 or num_workers < 1:
        raise ValueError("--shard_size and --num_workers must be >= 1")
    files = expand_pattern(input_pattern)
    tf.io.gfile.makedirs(output_dir)
    units = shard_writer.plan_units(files, fmt, shard_size)
    done, todo = [], []
    for unit in units:
        (done if tf.io.gfile.exists(shard_writer.unit_stats_path(output_dir, unit))
         else todo).append(unit)
    logging.info("%d input files -> %d units: %d already done, %d to do", len(files), len(units),
                 len(done), len(todo))
    progress = _Progress(sum(shard_writer.input_bytes(u) for u in todo))
    try:
        failed = _run_units(todo, (output_dir, fmt, shard_size, compression), num_workers,
                            progress)
    finally:
        progress.close()
    per_unit = []
    for unit in units:
        path = shard_writer.unit_stats_path(output_dir, unit)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                per_unit.append(json.load(f))
    stats = shard_writer.merge_stats(per_unit)
    stats.update(format=fmt, input=input_pattern, units_total=len(units),
                 units_skipped_as_done=len(done), units_processed=len(todo) - len(failed),
                 failed_units=failed)
    shard_writer.write_json_atomic(os.path.join(output_dir, "stats.json"), stats)
    return stats


def main(argv) -> int:
    del argv
    try:
        stats = run(FLAGS.input, FLAGS.output_dir, FLAGS.format, FLAGS.num_workers,
                    FLAGS.shard_size, FLAGS.compression)
    except (FileNotFoundError, ValueError) as e:
        print(f"preprocess: error: {e}", file=sys.stderr)
        return 2
    summary = {k: stats[k] for k in ("scenarios_read", "scenarios_written", "skipped",
                                     "history_only", "sdc_inferred", "defaults_applied",
                                     "agents_kept", "agents_dropped",
                                     "token_reconstruction_error_m", "failed_units")}
    print(json.dumps(summary))
    if stats["failed_units"]:
        for name, error in stats["failed_units"].items():
            print(f"preprocess: unit {name} failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
