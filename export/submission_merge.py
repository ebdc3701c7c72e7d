"""The last step of a WOSAC submission: every shard checked, then ONE tarball.

`finalize` runs at the end of a single-task job; `merge` (`python -m export.wosac_submission
merge --output_dir=OUT`) once after the tasks of a split job. A shard is checked once (by the
task that wrote it, `check_shard`, before its tar fragment is written); here the fragments are
only verified to exist and the scenario ids to be unique across shards.
"""

from __future__ import annotations

import collections
import glob
import json
import os

import numpy as np
from waymo_open_dataset.protos import sim_agents_submission_pb2

from export import submission_shards


def finalize(output_dir: str, plan: submission_shards.ShardPlan, max_skipped: int) -> dict:
    """Checks that every shard of the plan is there and checked, packs ONE tarball.

    A shard counts as checked when its tarball fragment exists (written right after
    `check_shard` passed); a shard without one (an interrupted task) is checked now. Across
    shards no scenario may appear twice (ids from the shards' stats).

    Raises:
      ValueError: a shard is missing or fails a check (named).
      RuntimeError: more than `max_skipped` scenarios were skipped (no tarball is written).
    """
    missing = [
        plan.shard_name(k)
        for k in range(plan.num_shards)
        if not os.path.exists(os.path.join(output_dir, plan.shard_name(k)))
    ]
    if missing:
        raise ValueError(
            f"{output_dir}: {len(missing)} of {plan.num_shards} shards are not "
            f"written yet ({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            "): run the missing tasks (or rerun them) first"
        )
    seen: dict[str, str] = {}
    for k in range(plan.num_shards):
        name = plan.shard_name(k)
        fragment = os.path.join(output_dir, submission_shards.fragment_name(name))
        ids = None if os.path.exists(fragment) else check_shard(output_dir, plan, k)
        if ids is None:
            with open(os.path.join(output_dir, name) + ".stats.json") as f:
                ids = json.load(f).get("scenario_ids")
        if ids is None:  # stats of an older run: read the ids from the shard itself
            ids = check_shard(output_dir, plan, k)
        for scenario_id in ids:
            if scenario_id in seen:
                raise ValueError(
                    f"{os.path.join(output_dir, name)}: scenario {scenario_id} "
                    f"is also in {seen[scenario_id]}"
                )
            seen[scenario_id] = name
    totals = aggregate(output_dir, plan, range(plan.num_shards))
    if totals["scenarios_skipped"] > max_skipped:
        submission_shards.write_json_atomic(os.path.join(output_dir, "stats.json"), totals)
        sources = ", ".join(s["source"] for s in totals["skipped"][:10])
        raise RuntimeError(
            f"{totals['scenarios_skipped']} scenarios skipped (> --max_skipped={max_skipped}): "
            f"{sources}; no tarball written (see {output_dir}/stats.json). Fix the inputs and "
            "delete the affected shards to redo them."
        )
    totals["tarball"] = submission_shards.write_tarball(
        output_dir, [plan.shard_name(k) for k in range(plan.num_shards)]
    )
    return totals


def check_shard(output_dir: str, plan: submission_shards.ShardPlan, k: int) -> list[str]:
    """Checks shard k (parses; scenario count = its stats; the plan's method; 32 joint rollouts
    of one object set; 80 finite steps of x, y, z, heading); returns its scenario ids.

    Raises:
      ValueError: naming the shard (and scenario, rollout, object) and what is wrong.
    """
    name = plan.shard_name(k)
    path = os.path.join(output_dir, name)
    with open(path, "rb") as f:
        data = f.read()
    try:
        shard = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(data)
    except Exception as e:  # protobuf raises DecodeError (and friends) here
        raise ValueError(f"{path}: not a SimAgentsChallengeSubmission ({e})") from e
    with open(path + ".stats.json") as f:
        stats = json.load(f)
    if len(shard.scenario_rollouts) != stats["scenarios_written"]:
        raise ValueError(
            f"{path}: holds {len(shard.scenario_rollouts)} scenarios, its stats "
            f"say {stats['scenarios_written']}"
        )
    metadata = plan.settings.get("metadata", {})
    if shard.unique_method_name != metadata.get("unique_method_name", shard.unique_method_name):
        raise ValueError(
            f"{path}: method {shard.unique_method_name!r} is not the plan's "
            f"{metadata.get('unique_method_name')!r}"
        )
    ids = []
    for rollouts in shard.scenario_rollouts:
        where = f"{path}: scenario {rollouts.scenario_id}"
        ids.append(rollouts.scenario_id)
        if len(rollouts.joint_scenes) != 32:
            raise ValueError(
                f"{where}: {len(rollouts.joint_scenes)} joint rollouts, WOSAC needs 32"
            )
        first = None
        for r, joint in enumerate(rollouts.joint_scenes):
            these = [t.object_id for t in joint.simulated_trajectories]
            if first is None:
                first = these
            elif these != first:
                raise ValueError(f"{where}: rollout {r} simulates other objects than rollout 0")
            for t in joint.simulated_trajectories:
                values = (t.center_x, t.center_y, t.center_z, t.heading)
                if (
                    any(len(v) != 80 for v in values)
                    or not np.isfinite(np.concatenate([np.asarray(v) for v in values])).all()
                ):
                    raise ValueError(
                        f"{where}: rollout {r}, object {t.object_id}: needs 80 "
                        "finite steps of x, y, z, heading"
                    )
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: a scenario appears twice in the shard")
    return ids


def merge(output_dir: str, max_skipped: int = 0) -> dict:
    """The final step of a split job: checks every task's shards, packs ONE tarball."""
    path = os.path.join(output_dir, submission_shards.PLAN_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{output_dir}: no {submission_shards.PLAN_NAME} (run the "
            "submission tasks into this directory first)"
        )
    with open(path) as f:
        plan = submission_shards.ShardPlan.from_json(json.load(f))
    totals = finalize(output_dir, plan, max_skipped)
    tasks = sorted(glob.glob(os.path.join(output_dir, "stats.task_*.json")))
    totals.update(tasks=[os.path.basename(t)[len("stats.") : -len(".json")] for t in tasks])
    submission_shards.write_json_atomic(os.path.join(output_dir, "stats.json"), totals)
    return totals


def aggregate(output_dir: str, plan: submission_shards.ShardPlan, shards) -> dict:
    """Sums the stats of `shards` (indices), keeping every skipped record; plus the plan's sizes."""
    totals = collections.Counter()
    skipped = []
    for k in shards:
        with open(os.path.join(output_dir, plan.shard_name(k)) + ".stats.json") as f:
            shard = json.load(f)
        skipped.extend(shard.pop("skipped"))
        shard.pop("scenario_ids", None)
        totals.update(shard)
    out = dict(totals)
    out.update(num_scenarios=plan.num_scenarios, num_shards=plan.num_shards, skipped=skipped)
    return out
