"""Converts one unit of input (a TFRecord file, or a group of GPUDrive JSON files) into sharded
TFRecords of serialized `Scene`s plus a per-unit stats file -- the work item of `preprocess`.

Commit protocol (what makes `preprocess` resumable and atomic): shards are written under temporary
names, renamed to their final names only once the whole unit succeeded, and the unit's
`<name>.stats.json` is written (temp + rename) last. A unit is done iff its stats file exists;
anything else of that unit found on disk is left over from an interrupted run and is removed
before the unit is redone.

Bad input: a scenario that fails to parse or validate is skipped and counted by
`ScenarioError.reason`. A corrupt TFRecord (broken framing/CRC) fails the whole unit: nothing of
that file is committed, and the error names the file and record.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from typing import Iterator

import numpy as np
import tensorflow as tf

from motion_sim.data import example_reader, gpudrive_reader, scenario_reader
from motion_sim.data.datatypes import MAX_AGENTS, NUM_STEPS, RawScenario, ScenarioError
from motion_sim.data.scene_builder import build_scene
from motion_sim.data.scene_codec import serialize_scene
from motion_sim.data.tfrecord_io import iter_records

FORMATS = ("scenario", "example", "gpudrive")
STATS_SUFFIX = ".stats.json"
_MAX_EXAMPLES_PER_REASON = 3  # skip messages kept per reason, for debugging a batch job


@dataclasses.dataclass(frozen=True)
class Unit:
    """One work item: `paths` are read in order and written as shards `<name>-NNNNN<ext>`."""
    name: str
    paths: tuple


def plan_units(files: list[str], fmt: str, shard_size: int) -> list[Unit]:
    """Deterministic units (same inputs -> same names), so a rerun finds finished ones."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def tag(paths):
        return hashlib.sha1("\n".join(paths).encode()).hexdigest()[:8]

    if fmt == "gpudrive":  # one scenario per file: group files into shard-sized units
        groups = [tuple(files[i:i + shard_size]) for i in range(0, len(files), shard_size)]
        return [Unit(f"gpudrive-{i:05d}-{tag(g)}", g) for i, g in enumerate(groups)]
    return [Unit(f"{os.path.basename(p).split('.')[0]}-{tag([p])}", (p,)) for p in files]


def _sources(unit: Unit, fmt: str) -> Iterator[tuple[str, object]]:
    """(source, payload) per scenario; payload is bytes (TFRecord) or a path (JSON)."""
    for path in unit.paths:
        if fmt == "gpudrive":
            yield f"{path}:0", path
        else:
            for index, serialized in iter_records(path):
                yield f"{path}:{index}", serialized


def _read(fmt: str, source: str, payload) -> RawScenario:
    if fmt == "scenario":
        return scenario_reader.read_scenario_bytes(payload, source)
    if fmt == "example":
        return example_reader.read_motion_example(
            example_reader.parse_example_bytes(payload, source), source)
    return gpudrive_reader.read_gpudrive_file(payload)


@functools.lru_cache(maxsize=1)
def _reconstruction_error_fn():
    """The tokenizer's reconstruction error, traced once per process (tracing takes seconds;
    a worker converts many units)."""
    from motion_sim.tokenizer import ActionTokenizer  # heavy; only where it is used
    return tf.function(ActionTokenizer().reconstruction_error, input_signature=[
        tf.TensorSpec([MAX_AGENTS, NUM_STEPS, 2], tf.float32),
        tf.TensorSpec([MAX_AGENTS, NUM_STEPS], tf.bool),
        tf.TensorSpec([MAX_AGENTS, NUM_STEPS, 2], tf.float32)])


class _TokenErrorMeter:
    """Accumulates the tokenizer's 10 Hz reconstruction error over valid agent-steps."""

    def __init__(self):
        self._fn = _reconstruction_error_fn()
        self.total, self.count, self.max = 0.0, 0, 0.0

    def add(self, scene) -> None:
        valid = scene.agent_valid & scene.agent_mask[:, None]
        err, mask = self._fn(scene.agent_xy, valid, scene.agent_vel)
        err = err.numpy()[mask.numpy()]
        if err.size:
            self.total += float(err.sum(dtype=np.float64))
            self.count += int(err.size)
            self.max = max(self.max, float(err.max()))


def empty_stats() -> dict:
    return {"scenarios_read": 0, "scenarios_written": 0, "skipped": {}, "skipped_examples": {},
            "history_only": 0, "sdc_inferred": 0, "defaults_applied": {},
            "agents_kept": 0, "agents_dropped": 0, "token_error_sum_m": 0.0,
            "token_error_count": 0, "token_error_max_m": 0.0, "output_files": []}


def write_json_atomic(path: str, payload: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def unit_stats_path(output_dir: str, unit: Unit) -> str:
    return os.path.join(output_dir, unit.name + STATS_SUFFIX)


def _remove_leftovers(output_dir: str, unit: Unit) -> None:
    for path in tf.io.gfile.glob(os.path.join(output_dir, unit.name + "-*")):
        tf.io.gfile.remove(path)


_TFRECORD_FRAMING_BYTES = 16  # length (8) + length CRC (4) + data CRC (4) per record


def input_bytes(unit: Unit) -> int:
    """Total size of the unit's input files (the progress bar's unit of work)."""
    return sum(tf.io.gfile.stat(path).length for path in unit.paths)


def process_unit(unit: Unit, output_dir: str, fmt: str, shard_size: int,
                 compression: str = "GZIP", progress=None) -> dict:
    """Converts one unit and commits it; returns its stats. Raises ScenarioError on a corrupt
    TFRecord (after removing this unit's partial output).

    `progress(num_bytes)`, if given, is called once per scenario read with its input size.
    """
    _remove_leftovers(output_dir, unit)
    ext = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    options = tf.io.TFRecordOptions(compression_type=compression if compression != "NONE" else "")
    stats = empty_stats()
    meter = _TokenErrorMeter()
    temp_paths, final_paths = [], []
    writer, in_shard = None, 0
    try:
        for source, payload in _sources(unit, fmt):
            stats["scenarios_read"] += 1
            if progress is not None:
                progress(len(payload) + _TFRECORD_FRAMING_BYTES if isinstance(payload, bytes)
                         else tf.io.gfile.stat(payload).length)
            try:
                raw = _read(fmt, source, payload)
                scene, dropped = build_scene(raw)
            except ScenarioError as e:
                stats["skipped"][e.reason] = stats["skipped"].get(e.reason, 0) + 1
                examples = stats["skipped_examples"].setdefault(e.reason, [])
                if len(examples) < _MAX_EXAMPLES_PER_REASON:
                    examples.append(str(e))
                continue
            if writer is None or in_shard >= shard_size:
                if writer is not None:
                    writer.close()
                final = os.path.join(output_dir, f"{unit.name}-{len(final_paths):05d}{ext}")
                temp = f"{final}.tmp-{os.getpid()}"
                temp_paths.append(temp)
                final_paths.append(final)
                writer, in_shard = tf.io.TFRecordWriter(temp, options), 0
            writer.write(serialize_scene(scene, dropped, history_only=raw.history_only))
            in_shard += 1
            stats["scenarios_written"] += 1
            stats["history_only"] += int(raw.history_only)
            stats["sdc_inferred"] += int(raw.sdc_inferred)
            for name in raw.defaults_applied:
                stats["defaults_applied"][name] = stats["defaults_applied"].get(name, 0) + 1
            stats["agents_kept"] += int(scene.agent_mask.sum())
            stats["agents_dropped"] += int(scene.num_agents_dropped)
            meter.add(scene)
        if writer is not None:
            writer.close()
            writer = None
    except BaseException:
        if writer is not None:
            writer.close()
        for temp in temp_paths:
            if tf.io.gfile.exists(temp):
                tf.io.gfile.remove(temp)
        raise
    for temp, final in zip(temp_paths, final_paths):
        tf.io.gfile.rename(temp, final, overwrite=True)
    stats.update(token_error_sum_m=meter.total, token_error_count=meter.count,
                 token_error_max_m=meter.max,
                 output_files=[os.path.basename(p) for p in final_paths],
                 inputs=list(unit.paths))
    write_json_atomic(unit_stats_path(output_dir, unit), stats)
    return stats


def merge_stats(per_unit: list[dict]) -> dict:
    """Sums per-unit stats into the stats.json summary."""
    total = empty_stats()
    for stats in per_unit:
        for key in ("scenarios_read", "scenarios_written", "agents_kept", "agents_dropped",
                    "token_error_sum_m", "token_error_count"):
            total[key] += stats[key]
        # Units committed before these counts existed lack them: count them as zero.
        for key in ("history_only", "sdc_inferred"):
            total[key] += stats.get(key, 0)
        for name, n in stats.get("defaults_applied", {}).items():
            total["defaults_applied"][name] = total["defaults_applied"].get(name, 0) + n
        total["token_error_max_m"] = max(total["token_error_max_m"], stats["token_error_max_m"])
        for reason, n in stats["skipped"].items():
            total["skipped"][reason] = total["skipped"].get(reason, 0) + n
        for reason, msgs in stats["skipped_examples"].items():
            kept = total["skipped_examples"].setdefault(reason, [])
            kept.extend(msgs[:_MAX_EXAMPLES_PER_REASON - len(kept)])
        total["output_files"].extend(stats["output_files"])
    count = total.pop("token_error_count")
    total_err = total.pop("token_error_sum_m")
    total["token_reconstruction_error_m"] = {
        "mean": total_err / count if count else None,
        "max": total.pop("token_error_max_m") if count else None,
        "agent_steps": count}
    total.pop("token_error_max_m", None)
    total["output_files"].sort()
    return total

