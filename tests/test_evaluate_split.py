"""`motion_sim.evaluate` split over task indices, and the merge of the parts.

The fast tests build parts by hand (no model, no scoring) and check the merge's validation:
each refusal is one message naming the part and what is wrong. The slow test runs the real CLI
as one process and as 2 tasks + merge on the bundled scenes and compares the result JSONs.
"""

from __future__ import annotations

import json
import os

import pytest
from waymo_open_dataset.protos import sim_agents_metrics_pb2

from export import signature, task_split
from motion_sim import evaluate_split
from motion_sim.agents.constant_velocity import ConstantVelocityAgent
from motion_sim.agents.random_agent import RandomAgent
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import history_only, rollouts_io
from motion_sim.metrics import results as results_lib
from tests.fixtures import SAMPLE_DIR, SCENARIO_FILES, cli
from tests.fixtures import rollouts as rollout_fixtures
from tests.fixtures.scenarios import read_scenarios, write_copies

TEST_SPLIT = os.path.join(SAMPLE_DIR, "test_split_fcb5b4973f486e78.tfrecord")
IDS = ["a", "b", "c", "d", "e"]
PLAN = {"scenes": {"count": 5, "sha256": evaluate_split._scene_list_key(IDS)}, "num_tasks": 2}
PLAN.update(config="2025", backend="fast", saved_model="fingerprint:x", seed=0, batch_size=1)


def _fields(i: int) -> dict:
    """Metric fields of scene i; scene "c" lacks one (presence must survive the merge)."""
    fields = {"metametric": 0.1 * i + 0.05, "linear_speed_likelihood": 0.3 + 0.1 * i}
    if i != 2:
        fields["collision_indication_likelihood"] = 0.9 - 0.1 * i
    return fields


def _write_parts(output, plan=PLAN, owners=((0, 2, 4), (1, 3))) -> None:
    for t, positions in enumerate(owners):
        task = task_split.TaskSpec(t, len(owners))
        results = {
            "plan": plan,
            "task": task.name(),
            "scenes": [[i, IDS[i]] for i in positions],
            "metrics": {IDS[i]: _fields(i) for i in positions},
            "unscored": [],
            "seconds": 1.0 + t,
            "timing": {"read_scenarios": 0.5, "decode": 1.0},
            "num_workers": 1,
            "fallback": {"sim_agents": 10, "fallback_agents": t, "num_scenarios": len(positions)},
        }
        evaluate_split.write_part(output, results)


def test_merge_aggregates_as_one_process(tmp_path):
    output = tmp_path / "wosac.json"
    _write_parts(output)
    merged = evaluate_split.merge(output)
    protos = [
        sim_agents_metrics_pb2.SimAgentMetrics(scenario_id=s, **_fields(i))
        for i, s in enumerate(IDS)
    ]
    one = results_lib.summarize(config_lib.load_config("2025"), protos)
    assert merged["aggregate"] == one["aggregate"]
    assert merged["buckets"] == one["buckets"]
    assert merged["scenarios"] == one["scenarios"]
    assert merged["num_scenarios"] == 5 and merged["seconds"] == 2.0
    assert merged["tasks"] == ["task_00000-of-00002", "task_00001-of-00002"]
    assert merged["fallback"]["fallback_agents"] == 1
    assert merged["fallback"]["fallback_agent_fraction"] == 1 / 20


def test_merge_refuses_a_missing_part(tmp_path):
    output = tmp_path / "wosac.json"
    _write_parts(output)
    os.remove(evaluate_split.part_path(output, task_split.TaskSpec(1, 2)))
    with pytest.raises(evaluate_split.PartError) as e:
        evaluate_split.merge(output)
    assert str(e.value) == (
        f"{tmp_path / 'wosac.parts'}: 1 of 2 parts missing (task_00001-of-00002): "
        "run those tasks first"
    )
    with pytest.raises(evaluate_split.PartError, match="no parts .run the evaluate tasks"):
        evaluate_split.merge(tmp_path / "other.json")


def test_merge_refuses_a_part_of_another_run(tmp_path):
    output = tmp_path / "wosac.json"
    _write_parts(output)
    path = evaluate_split.part_path(output, task_split.TaskSpec(1, 2))
    part = json.loads(path.read_text())
    part["plan"] = dict(PLAN, saved_model="fingerprint:y")
    path.write_text(json.dumps(part))
    with pytest.raises(evaluate_split.PartError) as e:
        evaluate_split.merge(output)
    assert str(e.value).startswith(f"{path}: of another run than ")
    assert "saved_model 'fingerprint:y' vs 'fingerprint:x'" in str(e.value)
    # A task of the new run refuses to add its part next to the old ones.
    with pytest.raises(evaluate_split.PartError, match="delete .*wosac.parts to start over"):
        evaluate_split.part_done(output, task_split.TaskSpec(0, 2), PLAN)


def test_merge_refuses_scenes_twice_or_missing(tmp_path):
    twice = tmp_path / "twice.json"
    _write_parts(twice, owners=((0, 2, 4), (1, 2, 3)))
    with pytest.raises(evaluate_split.PartError, match="scene c is in task_00000-of-00002 and"):
        evaluate_split.merge(twice)
    missing = tmp_path / "missing.json"
    _write_parts(missing, owners=((0, 2), (1, 3)))
    with pytest.raises(evaluate_split.PartError, match="hold 4 scenes, not the 5 of the plan"):
        evaluate_split.merge(missing)
    broken = tmp_path / "broken.json"
    _write_parts(broken)
    evaluate_split.part_path(broken, task_split.TaskSpec(0, 2)).write_text("{")
    with pytest.raises(evaluate_split.PartError, match="not a part of a split evaluate run"):
        evaluate_split.merge(broken)


def test_share_keeps_model_batches_whole():
    scenarios = {s.scenario_id: ("f", s) for _, s in read_scenarios()}
    ids = list(scenarios)
    # Batch 1: one scene per unit, round-robin; batch 2: both scenes are unit 0 (task 0's).
    assert evaluate_split.share_of(scenarios, task_split.TaskSpec(1, 2), 1).owned == {ids[1]}
    two = evaluate_split.share_of(scenarios, task_split.TaskSpec(1, 2), 2)
    assert two.owned == frozenset() and two.unit_keys == {ids[0]: 0, ids[1]: 0}


def _evaluate(*args):
    result = cli.run_module("motion_sim.evaluate", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def cv_model(tmp_path_factory):
    return signature.export_sim_agent(
        ConstantVelocityAgent(), str(tmp_path_factory.mktemp("models") / "cv")
    )


@pytest.mark.slow  # ~90 s: five CLI runs with a SavedModel and the fast metrics
def test_two_tasks_merge_to_the_one_process_result(cv_model, tmp_path):
    model = cv_model
    scenes = ",".join([*SCENARIO_FILES, TEST_SPLIT])  # 2 scored scenes + 1 history-only
    common = [f"--saved_model={model}", f"--scenarios={scenes}", "--backend=fast"]
    one = tmp_path / "one" / "wosac.json"
    _evaluate(*common, f"--output={one}", f"--rollouts_output={tmp_path / 'one' / 'r'}")
    split = tmp_path / "split" / "wosac.json"
    rollouts = tmp_path / "split" / "r"
    for t in range(2):
        out = _evaluate(
            *common,
            f"--output={split}",
            f"--rollouts_output={rollouts}",
            f"--task_index={t}",
            "--num_tasks=2",
        )
        assert f"task_0000{t}-of-00002 done" in out.stdout
    again = _evaluate(
        *common,
        f"--output={split}",
        f"--rollouts_output={rollouts}",
        "--task_index=1",
        "--num_tasks=2",
    )
    assert "task_00001-of-00002 was already done" in again.stdout  # resumed: nothing redone
    assert not split.exists()
    _evaluate("merge", f"--output={split}")
    a, b = json.loads(one.read_text()), json.loads(split.read_text())
    for key in ("aggregate", "buckets", "scenarios", "num_scenarios", "fallback", "config"):
        assert a[key] == b[key], key
    assert [u["scenario_id"] for u in a["unscored"]] == [u["scenario_id"] for u in b["unscored"]]
    assert a["num_scenarios"] == 2 and len(b["unscored"]) == 1
    assert b["rollouts_output"] == f"{rollouts}-task_*-of-00002"
    assert split.with_suffix(".md").read_text() == one.with_suffix(".md").read_text()
    ids = [r.scenario_id for _, r in rollouts_io.read_rollouts(b["rollouts_output"])]
    assert sorted(ids) == sorted(
        r.scenario_id for _, r in rollouts_io.read_rollouts(str(tmp_path / "one" / "r"))
    )


@pytest.mark.slow  # ~40 s: the fast metrics of two scenes, once whole and once per task
def test_rollouts_split_in_process_equals_one_process(tmp_path):
    from motion_sim import evaluate  # noqa: PLC0415 -- a binary; only this test needs it

    scenes = ",".join(SCENARIO_FILES)
    submission = str(tmp_path / "cv.binproto")
    history_only.write_rollouts(
        submission,
        [rollout_fixtures.make_rollouts(s, "noisy_log") for _, s in read_scenarios()],
    )
    one = evaluate.evaluate(scenes, rollout_pattern=submission)
    output = tmp_path / "wosac.json"
    for t in range(2):
        task = task_split.TaskSpec(t, 2)
        part = evaluate.evaluate(
            scenes, rollout_pattern=submission, task=task, split_output=str(output)
        )
        assert [s for _, s in part["scenes"]] == [list(one["scenarios"])[t]]
        evaluate_split.write_part(output, part)
    merged = evaluate_split.merge(output)
    for key in ("aggregate", "buckets", "scenarios", "num_scenarios"):
        assert merged[key] == one[key], key


@pytest.fixture(scope="module")
def four_scenes(tmp_path_factory) -> str:
    """The two bundled scenarios twice each under new ids: 4 scored scenes in one file."""
    return write_copies(str(tmp_path_factory.mktemp("scenes") / "four.tfrecord"), 2)


def test_split_batches_sample_as_one_process(four_scenes, tmp_path):
    """With --batch_size=2 a unit's seed is its first scene's: the tasks' rollouts of a
    stochastic policy are the one-process run's, scene for scene."""
    from motion_sim import evaluate  # noqa: PLC0415 -- a binary; only these tests need it

    model = signature.export_sim_agent(RandomAgent(), str(tmp_path / "random"))
    scenarios = {s.scenario_id: (src, s) for src, s in rollouts_io.read_scenarios(four_scenes)}

    def rollouts(task=None):  # None: the one-process path (no share)
        share = evaluate_split.share_of(scenarios, task, 2) if task else None
        mine = {k: v for k, v in scenarios.items() if not share or k in share.owned}
        pairs = evaluate._pairs(mine, None, model, 7, [], batch_size=2, share=share)
        return {r.scenario_id: r.SerializeToString() for _, _, r in pairs}

    one = rollouts()
    split = {**rollouts(task_split.TaskSpec(0, 2)), **rollouts(task_split.TaskSpec(1, 2))}
    assert len(one) == 4 and split == one
