"""Reading WOSAC rollouts (binproto files, shard globs, .tar.gz archives) and scenarios.

A rollout file holds either a `SimAgentsChallengeSubmission` (what the challenge server takes,
usually sharded as `submission.binproto-00000-of-00042`) or a single `ScenarioRollouts`; the
type is detected from the bytes. Scenarios come from TFRecord files of `scenario_pb2.Scenario`.
"""

from __future__ import annotations

import glob
import os
import tarfile
from typing import Iterator

from google.protobuf import message
from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2

from motion_sim.data import tfrecord_io
from motion_sim.data.datatypes import ScenarioError
from motion_sim.metrics.rollout_checks import RolloutError

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def expand(patterns: str) -> list[str]:
    """Comma-separated globs -> sorted unique existing files; raises if a pattern matches none."""
    paths = []
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        matched = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
        if not matched:
            raise RolloutError(pattern, "no file matches this pattern", reason="no_files")
        paths.extend(matched)
    return list(dict.fromkeys(paths))


def parse_rollouts(data: bytes, source: str) -> list[sim_agents_submission_pb2.ScenarioRollouts]:
    """Parses a binproto holding a `SimAgentsChallengeSubmission` or a `ScenarioRollouts`.

    The two are told apart by parsing: a `ScenarioRollouts` read as a submission fails (its
    scenario id string is not a valid message) and vice versa (a message is not a UTF-8 id),
    and an accepted parse must carry scenario ids.
    """
    try:
        submission = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(data)
        if submission.scenario_rollouts and all(
            r.scenario_id for r in submission.scenario_rollouts
        ):
            return list(submission.scenario_rollouts)
    except message.DecodeError:
        pass
    try:
        rollouts = sim_agents_submission_pb2.ScenarioRollouts.FromString(data)
        if rollouts.scenario_id:
            return [rollouts]
    except message.DecodeError:
        pass
    raise RolloutError(
        source,
        "not a SimAgentsChallengeSubmission or ScenarioRollouts binproto (or it holds no scenario)",
        reason="bad_proto",
    )


def _file_payloads(path: str) -> Iterator[tuple[str, bytes]]:
    if path.endswith(_TAR_SUFFIXES):
        with tarfile.open(path, "r:*") as archive:
            members = sorted((m for m in archive.getmembers() if m.isfile()), key=lambda m: m.name)
            if not members:
                raise RolloutError(path, "archive holds no files", reason="no_files")
            for member in members:
                yield f"{path}:{member.name}", archive.extractfile(member).read()
    else:
        with open(path, "rb") as f:
            yield path, f.read()


def read_rollouts(
    patterns: str,
) -> Iterator[tuple[str, sim_agents_submission_pb2.ScenarioRollouts]]:
    """Yields (source, ScenarioRollouts) from every file / archive member matching `patterns`."""
    for path in expand(patterns):
        for source, data in _file_payloads(path):
            for rollouts in parse_rollouts(data, source):
                yield source, rollouts


def read_scenarios(patterns: str) -> Iterator[tuple[str, scenario_pb2.Scenario]]:
    """Yields ("file:record", Scenario) from TFRecord files matching `patterns`."""
    for path in expand(patterns):
        records = tfrecord_io.iter_records(path)
        while True:
            try:  # a truncated / corrupt file: one line naming file:record, no TF-internal text
                index, record = next(records)
            except StopIteration:
                break
            except ScenarioError as e:
                raise RolloutError(e.source, str(e)[len(e.source) + 2 :], reason=e.reason) from None
            source = f"{path}:{index}"
            try:
                yield source, scenario_pb2.Scenario.FromString(record)
            except message.DecodeError as e:
                raise RolloutError(
                    source, f"not a Scenario proto ({e})", reason="bad_scenario"
                ) from e
