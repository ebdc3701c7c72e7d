"""Shard plan, atomic shard files and the tarball of a WOSAC submission.

A submission run is a fixed plan -- the input files with their record counts, the shard size
and everything else that decides the bytes of a shard -- stored as `plan.json` in the output
directory. Shard k holds the scenarios with global record index in
[k * shard_size, (k + 1) * shard_size). A shard counts as finished only once its final name
exists (written to a temp file, then renamed), so an interrupted run resumes by skipping the
shards already there; a resumed run with a different plan is refused rather than mixed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tarfile
import tempfile
from typing import Iterator

from motion_sim.data import scenario_reader
from motion_sim.data import tfrecord_io

SHARD_PREFIX = "submission.binproto"
TARBALL_NAME = "submission.tar.gz"
PLAN_NAME = "plan.json"


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """What to write and how it is cut into shards.

    Attributes:
      files: ((path, num_records), ...) in processing order.
      shard_size: scenarios per shard (the last one may be smaller).
      settings: everything else that determines a shard's bytes (model, seed, metadata).
    """
    files: tuple
    shard_size: int
    settings: dict

    @property
    def num_scenarios(self) -> int:
        return sum(n for _, n in self.files)

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.num_scenarios // self.shard_size))

    def shard_name(self, k: int) -> str:
        return f"{SHARD_PREFIX}-{k:05d}-of-{self.num_shards:05d}"

    def shard_of(self, global_index: int) -> int:
        return global_index // self.shard_size

    def shard_count(self, k: int) -> int:
        """Records (scenarios before skips) that belong to shard k."""
        return min(self.shard_size, self.num_scenarios - k * self.shard_size)

    def to_json(self) -> dict:
        return {"files": [list(f) for f in self.files], "shard_size": self.shard_size,
                "settings": self.settings}

    @classmethod
    def from_json(cls, obj: dict) -> ShardPlan:
        """Inverse of `to_json` (a stored plan.json)."""
        return cls(files=tuple((str(p), int(n)) for p, n in obj["files"]),
                   shard_size=int(obj["shard_size"]), settings=dict(obj["settings"]))


def make_plan(pattern: str, shard_size: int, settings: dict) -> ShardPlan:
    """Lists and counts the input records (reading every file once).

    Raises:
      FileNotFoundError: nothing matches `pattern`.
      ScenarioError: a file is not a readable TFRecord (message names file:record).
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    files = []
    for path in tfrecord_io.expand_pattern(pattern):
        count = sum(1 for _ in tfrecord_io.iter_records(path))
        files.append((path, count))
    return ShardPlan(files=tuple(files), shard_size=int(shard_size), settings=dict(settings))


def iter_planned_records(plan: ShardPlan) -> Iterator[tuple[int, str, bytes]]:
    """(global index, "file:record", serialized bytes) for every record of the plan."""
    index = 0
    for path, _ in plan.files:
        for source, serialized in scenario_reader.iter_scenario_records(path):
            yield index, source, serialized
            index += 1


def _default_mode() -> int:
    # mkstemp creates 0600 files; outputs should get the usual umask-derived mode instead.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str, data: bytes) -> None:
    """Writes `data` to a temp file beside `path`, fsyncs it and renames it into place."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=directory)
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def check_or_write_plan(output_dir: str, plan: ShardPlan) -> bool:
    """Stores the plan, or checks it equals the stored one; returns True when resuming."""
    path = os.path.join(output_dir, PLAN_NAME)
    wanted = json.loads(json.dumps(plan.to_json()))  # normalise tuples to lists
    if os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            settings = stored.get("settings", {})
            changed += sorted(f"settings.{k}" for k in set(settings) | set(plan.settings)
                              if settings.get(k) != plan.settings.get(k))
            raise ValueError(
                f"{output_dir} holds a submission run with a different plan (differs in "
                f"{', '.join(changed)}); use a new --output_dir or delete that one")
        return True
    write_json_atomic(path, wanted)
    return False


def write_tarball(output_dir: str, shard_names: list[str]) -> str:
    """Packs the shards (flat, as the WOSAC server expects) into submission.tar.gz atomically."""
    path = os.path.join(output_dir, TARBALL_NAME)
    fd, tmp = tempfile.mkstemp(prefix=f".{TARBALL_NAME}.tmp-", dir=output_dir)
    os.fchmod(fd, _default_mode())
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for name in shard_names:
                tar.add(os.path.join(output_dir, name), arcname=name)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
