r"""`motion_sim.evaluate` split over the tasks of a multi-host job, and the merge of their parts.

    python -m motion_sim.evaluate --saved_model=DIR --scenarios=GLOB --output=F.json \
        --task_index=t --num_tasks=N                      # on every task (or TF_CONFIG)
    python -m motion_sim.evaluate merge --output=F.json   # once, when every task is done

Task t of N (`export/task_split.py`: the flags, else TF_CONFIG's cluster) scores its share of
the scene list and writes `F.parts/task_t-of-N.json` (with `--rollouts_output=R` also its
rollouts, `R-task_t-of-N`); the merge checks the parts and writes the one F.json (+ F.md) with
the numbers of a one-process run on the same scenes.

The share: the scenes with a logged future, in --scenarios order, are cut into units of
--batch_size consecutive scenes (1 with --rollouts) -- the model calls of a one-process run,
so a unit gets the same seed and rollouts in any split -- and task t owns the units u with
u % N == t; history-only scenes (rolled out, not scored) are dealt round-robin on their own.

Same numbers: a part keeps each scene's metric fields *as set* (proto2 presence: the official
`aggregate_scenario_metrics` averages the fields its first scene sets) and the scene's position
in the list; the merge rebuilds the protos in list order and aggregates them with the same
official code.

With --images_dir each task draws the first --num_images scenes of its share (PNG names are
scenario ids, so the tasks can share the directory).

Resume: a task whose part exists with the same plan (model fingerprint or rollout files, config,
backend, seed, batch size, the ordered scene ids, N) is done and is not rerun; an interrupted
task reruns its whole share (more tasks = finer resume). A part of another plan in F.parts is
refused, never mixed: delete F.parts to start over.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import pathlib

from waymo_open_dataset.protos import sim_agents_metrics_pb2

from export import submission_shards, task_split
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import history_only, rollouts_io
from motion_sim.metrics import results as results_lib


class PartError(ValueError):
    """A part of a split run is missing, unreadable or of another run; the message names it."""


@dataclasses.dataclass(frozen=True)
class Share:
    """This task's scenes of the scene list.

    Attributes:
      position: scenario id -> its index in the scene list (every scene, whichever task).
      owned: ids of this task's scenes (scored and history-only).
      unit_keys: scored scenario id -> its unit (consecutive `unit` scored scenes): model
        batches never cross a unit, so a unit's seed and rollouts do not depend on the split.
    """

    position: dict
    owned: frozenset
    unit_keys: dict


def share_of(scenarios: dict, task: task_split.TaskSpec, unit: int) -> Share:
    """The share of `task` of `scenarios` ({id: (source, Scenario)}, in list order)."""
    scored, history = [], []
    for scenario_id, (_, scenario) in scenarios.items():
        (history if history_only.is_history_only(scenario) else scored).append(scenario_id)
    unit_keys = {scenario_id: i // unit for i, scenario_id in enumerate(scored)}
    owned = {s for s in scored if task.owns(unit_keys[s])}
    owned |= {s for j, s in enumerate(history) if task.owns(j)}
    return Share({s: i for i, s in enumerate(scenarios)}, frozenset(owned), unit_keys)


def _scene_list_key(scenario_ids) -> str:
    return hashlib.sha256("\n".join(scenario_ids).encode("utf-8")).hexdigest()


def make_plan(
    scenario_ids: list[str],
    task: task_split.TaskSpec,
    year: str,
    backend: str,
    saved_model: str | None,
    rollout_pattern: str | None,
    seed: int,
    batch_size: int,
) -> dict:
    """Everything that decides a part's numbers; every part of one merge must share it.

    Keyed by content where it is cheap: the SavedModel's fingerprint (not its path, which
    differs between hosts), the ordered scene ids; rollout files by name and size.
    """
    plan = {
        "scenes": {"count": len(scenario_ids), "sha256": _scene_list_key(scenario_ids)},
        "config": year,
        "backend": backend,
        "num_tasks": task.count,
    }
    if saved_model:
        plan.update(
            saved_model=submission_shards.saved_model_key(saved_model),
            seed=int(seed),
            batch_size=int(batch_size),
        )
    else:
        plan["rollouts"] = [
            [os.path.basename(p), os.path.getsize(p)] for p in rollouts_io.expand(rollout_pattern)
        ]
    return plan


def parts_dir(output) -> pathlib.Path:
    """F.parts beside the final output F.json."""
    output = pathlib.Path(output)
    return output.with_name(output.stem + ".parts")


def part_path(output, task: task_split.TaskSpec) -> pathlib.Path:
    return parts_dir(output) / f"{task.name()}.json"


def rollouts_shard(rollouts_output: str | None, task: task_split.TaskSpec) -> str | None:
    """This task's `--rollouts_output` file: R-task_t-of-N (a split run writes one per task)."""
    return f"{rollouts_output}-{task.name()}" if rollouts_output and task.is_split else None


_PART_KEYS = ("plan", "task", "scenes", "metrics", "seconds", "timing", "num_workers")


def _differences(plan: dict, other: dict) -> str:
    keys = sorted(k for k in set(plan) | set(other) if plan.get(k) != other.get(k))
    return ", ".join(f"{k} {other.get(k)!r} vs {plan.get(k)!r}" for k in keys)


def _read_part(path) -> dict:
    try:
        with open(path) as f:
            part = json.load(f)
    except (OSError, ValueError) as e:
        raise PartError(f"{path}: not a part of a split evaluate run ({e})") from None
    lacking = [k for k in _PART_KEYS if not isinstance(part, dict) or k not in part]
    if lacking:
        raise PartError(f"{path}: not a part of a split evaluate run (no {', '.join(lacking)})")
    return part


def part_done(output, task: task_split.TaskSpec, plan: dict) -> bool:
    """Whether this task's part exists with `plan` (then the task is done).

    Raises:
      PartError: a part in F.parts was written with another plan (named, with what differs).
    """
    for path in sorted(glob.glob(str(parts_dir(output) / "task_*.json"))):
        part = _read_part(path)
        if part["plan"] != plan:
            raise PartError(
                f"{path}: written by another run ({_differences(plan, part['plan'])}); "
                f"delete {parts_dir(output)} to start over"
            )
    return part_path(output, task).exists()


def part_fields(share: Share, per_scenario: list, plan: dict, task) -> dict:
    """What a task's part adds to its `evaluate` results: the plan, its scenes with their
    positions, and every scored scene's metric fields as set (presence kept)."""
    return {
        "plan": plan,
        "task": task.name(),
        "scenes": sorted([share.position[s], s] for s in share.owned),
        "metrics": {
            m.scenario_id: {f.name: v for f, v in m.ListFields() if f.name != "scenario_id"}
            for m in per_scenario
        },
    }


def write_part(output, results: dict) -> pathlib.Path:
    """Writes a task's results (with `part_fields`) atomically to F.parts/<task>.json."""
    path = parts_dir(output) / f"{results['task']}.json"
    results_lib.write_json(path, results)
    return path


def _load_parts(output) -> list[dict]:
    """Every part, checked: one plan, the N names it implies, all there."""
    paths = sorted(glob.glob(str(parts_dir(output) / "task_*.json")))
    if not paths:
        raise PartError(
            f"{parts_dir(output)}: no parts (run the evaluate tasks with --output={output} first)"
        )
    parts = [_read_part(p) for p in paths]
    plan = parts[0]["plan"]
    for path, part in zip(paths, parts):
        if part["plan"] != plan:
            raise PartError(
                f"{path}: of another run than {paths[0]} ({_differences(plan, part['plan'])}): "
                "parts of different runs cannot be merged"
            )
        if os.path.basename(path) != f"{part['task']}.json":
            raise PartError(f"{path}: holds the part of {part['task']}")
    count = int(plan["num_tasks"])
    expected = [task_split.TaskSpec(t, count).name() for t in range(count)]
    missing = sorted(set(expected) - {p["task"] for p in parts})
    if missing:
        raise PartError(
            f"{parts_dir(output)}: {len(missing)} of {count} parts missing "
            f"({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}): run those tasks first"
        )
    return parts


def _scene_order(parts: list[dict], plan: dict, output) -> dict:
    """scenario id -> position; every scene of the plan in exactly one part, each scored."""
    position, owner = {}, {}
    for part in parts:
        unscored = {u["scenario_id"] for u in part.get("unscored", [])}
        for index, scenario_id in part["scenes"]:
            if scenario_id in owner:
                raise PartError(
                    f"{parts_dir(output)}: scene {scenario_id} is in {owner[scenario_id]} "
                    f"and {part['task']}"
                )
            if scenario_id not in part["metrics"] and scenario_id not in unscored:
                raise PartError(f"{part['task']}: scene {scenario_id} has no result")
            position[scenario_id], owner[scenario_id] = index, part["task"]
    ordered = sorted(position, key=position.get)
    if [position[s] for s in ordered] != list(range(plan["scenes"]["count"])) or (
        _scene_list_key(ordered) != plan["scenes"]["sha256"]
    ):
        raise PartError(
            f"{parts_dir(output)}: the parts hold {len(ordered)} scenes, not the "
            f"{plan['scenes']['count']} of the plan's scene list"
        )
    return position


def merge(output) -> dict:
    """The results of the whole split run from F.parts (the dict `evaluate.evaluate` returns
    for one process, plus `tasks`): metrics aggregated over every scene in list order, counts
    summed, `seconds` the slowest task's, `timing` summed over tasks.

    Raises:
      PartError: a part is missing, unreadable or of another run, or a scene is missing or in
        two parts.
    """
    parts = _load_parts(output)
    plan = parts[0]["plan"]
    position = _scene_order(parts, plan, output)
    metrics = [
        sim_agents_metrics_pb2.SimAgentMetrics(scenario_id=s, **fields)
        for part in parts
        for s, fields in part["metrics"].items()
    ]
    metrics.sort(key=lambda m: position[m.scenario_id])
    shards = [p["rollouts_output"] for p in parts if p.get("rollouts_output")]
    for shard in shards:
        if not os.path.exists(shard):
            raise PartError(f"{shard}: rollouts of a task are missing (rerun that task)")
    config = config_lib.load_config(plan["config"])
    results = results_lib.summarize(config, metrics) if metrics else {}
    unscored = [u for p in parts for u in p.get("unscored", [])]
    results.update(
        unscored=sorted(unscored, key=lambda u: position[u["scenario_id"]]),
        rollouts_output=_shard_pattern(shards[0], plan) if shards else None,
        config=plan["config"],
        backend=plan["backend"],
        num_scenarios=len(metrics),
        seconds=max(p["seconds"] for p in parts),
        num_workers=parts[0]["num_workers"],
        timing=_summed([p["timing"] for p in parts]),
        tasks=[p["task"] for p in parts],
    )
    if any("images" in p for p in parts):
        results["images"] = [i for p in parts for i in p.get("images", [])]
    if "fallback" in parts[0]:
        fallback = _summed([p["fallback"] for p in parts])
        sim = fallback["sim_agents"]
        fallback["fallback_agent_fraction"] = fallback["fallback_agents"] / sim if sim else 0.0
        results["fallback"] = fallback
    return results


def _shard_pattern(shard: str, plan: dict) -> str:
    """R-task_*-of-N: every task's rollouts, a glob that `evaluate --rollouts` reads back."""
    return f"{shard.rsplit('-task_', 1)[0]}-task_*-of-{int(plan['num_tasks']):05d}"


def _summed(dicts: list[dict]) -> dict:
    return {k: sum(d.get(k, 0) for d in dicts) for k in dicts[0]}
