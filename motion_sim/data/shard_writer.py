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
import re
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


def input_key(path: str) -> list:
    """[size, mtime in ns] of an input file: changes when the file is regenerated or edited, and
    costs one stat (hashing every input of a WOMD-sized run on each resume would not)."""
    try:
        stat = tf.io.gfile.stat(path)
    except tf.errors.OpError:
        return [-1, -1]  # unreadable (e.g. a dangling link): its unit fails, named, when run
    return [int(stat.length), int(stat.mtime_nsec)]


def plan_units(
    files: list[str], fmt: str, shard_size: int, compression: str = "GZIP"
) -> list[Unit]:
    """Deterministic units (same inputs and flags -> same names), so a rerun finds finished ones.

    A unit's name ends in a tag over everything that decides which scenes it writes and how
    they are stored: the format, the compression, each of its input files' path, size and mtime,
    and for GPUDrive (where it decides the grouping of files into units) the shard size. A
    rerun with another such flag or a regenerated input therefore plans units with new names,
    and the outputs of the earlier plan are found as stale (`stale_outputs`) instead of being
    counted as done. (For TFRecord inputs a different --shard_size only cuts the same scenes into
    other shards, so finished units stay valid.)
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def tag(paths):
        identity = {
            "format": fmt,
            "compression": compression,
            "inputs": [[p, *input_key(p)] for p in paths],
        }
        if fmt == "gpudrive":
            identity["shard_size"] = int(shard_size)
        return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]

    if fmt == "gpudrive":  # one scenario per file: group files into shard-sized units
        groups = [tuple(files[i : i + shard_size]) for i in range(0, len(files), shard_size)]
        return [Unit(f"gpudrive-{i:05d}-{tag(g)}", g) for i, g in enumerate(groups)]
    return [Unit(f"{_stem(p)}-{tag([p])}", (p,)) for p in files]


def _stem(path: str) -> str:
    """A file's name up to its first dot, as a safe, short prefix of output names: the tag keeps
    names unique, and a 250-character input name must not make a shard name over NAME_MAX."""
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", os.path.basename(path).split(".")[0])[:64]


_SHARD_RE = re.compile(r"^(?P<unit>.+)-\d{5}\.tfrecord(\.gz)?$")


def stale_outputs(output_dir: str, units: list[Unit]) -> list[str]:
    """Files in `output_dir` written by preprocess for units that are not in `units`: shards and
    unit stats of an earlier plan (other inputs, format, shard size or compression)."""
    names = {u.name for u in units}
    stale = []
    for entry in sorted(tf.io.gfile.listdir(output_dir)):
        entry = entry.rstrip("/")
        if entry.endswith(STATS_SUFFIX):
            unit = entry[: -len(STATS_SUFFIX)]
        else:
            match = _SHARD_RE.match(entry)
            unit = match.group("unit") if match else None
        if unit is not None and unit not in names:
            stale.append(entry)
    return stale


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
            example_reader.parse_example_bytes(payload, source), source
        )
    if tf.io.gfile.isdir(payload):
        raise ScenarioError(
            source, "is a directory, not a JSON file (narrow the glob)", reason="not_a_file"
        )
    return gpudrive_reader.read_gpudrive_file(payload)


@functools.lru_cache(maxsize=1)
def _reconstruction_error_fn():
    """The tokenizer's reconstruction error, traced once per process (tracing takes seconds;
    a worker converts many units)."""
    from motion_sim.tokenizer import ActionTokenizer  # heavy; only where it is used

    return tf.function(
        ActionTokenizer().reconstruction_error,
        input_signature=[
            tf.TensorSpec([MAX_AGENTS, NUM_STEPS, 2], tf.float32),
            tf.TensorSpec([MAX_AGENTS, NUM_STEPS], tf.bool),
            tf.TensorSpec([MAX_AGENTS, NUM_STEPS, 2], tf.float32),
        ],
    )


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
    return {
        "scenarios_read": 0,
        "scenarios_written": 0,
        "skipped": {},
        "skipped_examples": {},
        "history_only": 0,
        "sdc_inferred": 0,
        "defaults_applied": {},
        "agents_kept": 0,
        "agents_dropped": 0,
        "token_error_sum_m": 0.0,
        "token_error_count": 0,
        "token_error_max_m": 0.0,
        "output_files": [],
    }


def is_failure(reason: str) -> bool:
    """Skip reasons that mean the input could not be read at all (a reader error, a directory,
    an unreadable file), as opposed to a scenario that was read and judged unusable: they make
    `preprocess` exit non-zero even though the batch finished."""
    return reason.startswith("unexpected_") or reason in ("not_a_file", "unreadable")


def count_skip(stats: dict, reason: str, message: str) -> None:
    """Counts one skipped scenario under `reason`, keeping the first few messages."""
    stats["skipped"][reason] = stats["skipped"].get(reason, 0) + 1
    examples = stats["skipped_examples"].setdefault(reason, [])
    if len(examples) < _MAX_EXAMPLES_PER_REASON:
        examples.append(message)


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
    return sum(max(input_key(path)[0], 0) for path in unit.paths)


def process_unit(
    unit: Unit, output_dir: str, fmt: str, shard_size: int, compression: str = "GZIP", progress=None
) -> dict:
    """Converts one unit and commits it; returns its stats. Raises ScenarioError on a corrupt
    TFRecord (after removing this unit's partial output).

    `progress(num_bytes)`, if given, is called once per scenario read with its input size.
    """
    _remove_leftovers(output_dir, unit)
    ext = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    options = tf.io.TFRecordOptions(compression_type=compression if compression != "NONE" else "")
    stats = empty_stats()
    stats["scenarios"] = []  # [scenario_id, source, shard, agents kept]: for cross-unit checks
    first_source = {}
    meter = _TokenErrorMeter()
    temp_paths, final_paths = [], []
    writer, in_shard = None, 0
    try:
        for source, payload in _sources(unit, fmt):
            stats["scenarios_read"] += 1
            if progress is not None:
                progress(
                    len(payload) + _TFRECORD_FRAMING_BYTES
                    if isinstance(payload, bytes)
                    else tf.io.gfile.stat(payload).length
                )
            try:
                raw = _read(fmt, source, payload)
                scene, dropped = build_scene(raw)
                scenario_id = str(scene.scenario_id.item())
                if scenario_id in first_source:
                    raise ScenarioError(
                        source,
                        f"scenario {scenario_id!r} appears twice (kept "
                        f"{first_source[scenario_id]})",
                        reason="duplicate_scenario_id",
                    )
            except ScenarioError as e:
                count_skip(stats, e.reason, str(e))
                continue
            except Exception as e:  # noqa: BLE001 -- one bad record must not stop the unit
                # A reader bug or an input shape no check foresaw: named and counted like any
                # other bad record, so the rest of the file and the batch still get converted.
                count_skip(
                    stats, f"unexpected_{type(e).__name__}", f"{source}: {type(e).__name__}: {e}"
                )
                continue
            first_source[scenario_id] = source
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
            stats["scenarios"].append(
                [
                    scenario_id,
                    source,
                    os.path.basename(final_paths[-1]),
                    int(scene.agent_mask.sum()),
                ]
            )
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
    stats.update(
        token_error_sum_m=meter.total,
        token_error_count=meter.count,
        token_error_max_m=meter.max,
        output_files=[os.path.basename(p) for p in final_paths],
        inputs=list(unit.paths),
    )
    write_json_atomic(unit_stats_path(output_dir, unit), stats)
    return stats


def _scenario_id_of(serialized: bytes) -> str:
    """The scenario id of a serialized scene, read from the Example without TF ops."""
    from tensorflow.core.framework import tensor_pb2  # proto only: cheap

    example = tf.train.Example.FromString(serialized)
    tensor = tensor_pb2.TensorProto.FromString(
        example.features.feature["scenario_id"].bytes_list.value[0]
    )
    return tensor.string_val[0].decode()


def _rewrite_without(path: str, drop_ids: set) -> int:
    """Rewrites shard `path` without the scenes whose id is in `drop_ids` (temp + rename; the
    shard is removed when nothing is left); returns how many scenes it dropped."""
    compression = "GZIP" if path.endswith(".gz") else ""
    kept, dropped = [], 0
    for record in tf.data.TFRecordDataset(path, compression_type=compression):
        record = record.numpy()
        if _scenario_id_of(record) in drop_ids:
            dropped += 1
        else:
            kept.append(record)
    if not dropped:
        return 0
    if not kept:
        tf.io.gfile.remove(path)
        return dropped
    temp = f"{path}.tmp-{os.getpid()}"
    with tf.io.TFRecordWriter(temp, tf.io.TFRecordOptions(compression_type=compression)) as w:
        for record in kept:
            w.write(record)
    tf.io.gfile.rename(temp, path, overwrite=True)
    return dropped


def drop_duplicate_scenarios(output_dir: str, units: list[Unit], per_unit: list[dict]) -> None:
    """One scenario id, one scene: across units (in plan order) the first copy is kept and later
    ones are removed from their shards and counted as skipped "duplicate_scenario_id" in their
    unit's stats (rewritten). `per_unit[i]` are the stats of `units[i]` (updated in place).

    Idempotent: a crash between a shard rewrite and its stats update is finished by the next run.
    """
    first = {}
    for unit, stats in zip(units, per_unit):
        later = [row for row in stats.get("scenarios", []) if row[0] in first]
        for row in stats.get("scenarios", []):
            first.setdefault(row[0], row[1])
        if not later:
            continue
        by_shard = {}
        for row in later:
            by_shard.setdefault(row[2], []).append(row)
        for shard, rows in by_shard.items():
            path = os.path.join(output_dir, shard)
            if tf.io.gfile.exists(path):
                _rewrite_without(path, {row[0] for row in rows})
            if not tf.io.gfile.exists(path) and shard in stats["output_files"]:
                stats["output_files"].remove(shard)
        for row in later:
            stats["scenarios_written"] -= 1
            stats["agents_kept"] -= row[3]
            count_skip(
                stats,
                "duplicate_scenario_id",
                f"{row[1]}: scenario {row[0]!r} appears twice (kept {first[row[0]]})",
            )
        dropped = {id(row) for row in later}
        stats["scenarios"] = [row for row in stats["scenarios"] if id(row) not in dropped]
        write_json_atomic(unit_stats_path(output_dir, unit), stats)


def merge_stats(per_unit: list[dict]) -> dict:
    """Sums per-unit stats into the stats.json summary."""
    total = empty_stats()
    for stats in per_unit:
        for key in (
            "scenarios_read",
            "scenarios_written",
            "agents_kept",
            "agents_dropped",
            "token_error_sum_m",
            "token_error_count",
        ):
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
            kept.extend(msgs[: _MAX_EXAMPLES_PER_REASON - len(kept)])
        total["output_files"].extend(stats["output_files"])
    total.pop("scenarios", None)
    count = total.pop("token_error_count")
    total_err = total.pop("token_error_sum_m")
    total["token_reconstruction_error_m"] = {
        "mean": total_err / count if count else None,
        "max": total.pop("token_error_max_m") if count else None,
        "agent_steps": count,
    }
    total.pop("token_error_max_m", None)
    total["output_files"].sort()
    return total
