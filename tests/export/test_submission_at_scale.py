"""Submissions at scale: several scenes per call, replicas, a job split over tasks + merge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap

import numpy as np
import pytest
from waymo_open_dataset.protos import sim_agents_submission_pb2

from export import batched_rollouts, saved_model_rollouts, task_split, wosac_submission
from tests.export.test_wosac_submission import METADATA, METADATA_FLAGS
from tests.fixtures import REPO
from tests.fixtures.scenarios import read_scenarios, write_copies


@pytest.fixture(scope="module")
def six_scenes(tmp_path_factory) -> str:
    """The two bundled scenarios, three times each under new ids: 6 records in one file."""
    return write_copies(str(tmp_path_factory.mktemp("scenes") / "six.tfrecord"), 3)


def _members(tarball: str) -> dict[str, bytes]:
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _scenario_ids(shard_bytes: bytes) -> list[str]:
    shard = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(shard_bytes)
    return [r.scenario_id for r in shard.scenario_rollouts]


def test_task_spec_and_tf_config(monkeypatch):
    assert [k for k in range(7) if task_split.TaskSpec(1, 3).owns(k)] == [1, 4]
    assert task_split.task_from_flags_or_cluster(None, None) == task_split.TaskSpec(0, 1)
    assert task_split.task_from_flags_or_cluster(2, 4) == task_split.TaskSpec(2, 4)
    with pytest.raises(ValueError, match="both --task_index and --num_tasks"):
        task_split.task_from_flags_or_cluster(1, None)
    with pytest.raises(ValueError, match="must be in"):
        task_split.task_from_flags_or_cluster(4, 4)
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
                "task": {"type": "worker", "index": 1},
            }
        ),
    )
    assert task_split.task_from_flags_or_cluster(None, None) == task_split.TaskSpec(2, 3)


def test_batch_of_one_keeps_the_per_scenario_rollouts(tmp_path, six_scenes, random_saved_model):
    out = tmp_path / "b1"
    wosac_submission.write_submission(
        random_saved_model, six_scenes, str(out), METADATA, shard_size=4, seed=3
    )
    shard = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(
        (out / "submission.binproto-00000-of-00002").read_bytes()
    )
    scenario = read_scenarios()[1][1]
    scenario.scenario_id += "_0"
    want = saved_model_rollouts.generate_scenario_rollouts(random_saved_model, scenario, 3)
    assert shard.scenario_rollouts[1] == want
    plan = json.loads((out / "plan.json").read_text())
    assert "batch_size" not in plan["settings"]  # plans of batch-1 runs are unchanged


def test_units_never_cross_a_shard():
    items = [
        batched_rollouts.SceneItem(str(i), None, {}, key=k)
        for i, k in enumerate([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    ]
    units = [[int(i.source) for i in u] for u in batched_rollouts.cut_units(items, 4)]
    assert units == [[0, 1, 2], [3, 4], [5, 6, 7, 8], [9]]


def test_the_last_unit_is_padded_to_the_batch(six_scenes, random_saved_model, scenarios):
    from export import scene_input

    runner = batched_rollouts.BatchedRollouts(random_saved_model, batch_size=3)
    items = [
        batched_rollouts.SceneItem(src, s, scene_input.scene_from_scenario(s, src))
        for src, s in scenarios
    ]
    feed = runner._feed(items, seed=0)
    assert feed["agent_mask"].shape[0] == 3  # 2 scenes + 1 padding row
    outputs = runner.run_units([items], seed=0)
    assert outputs[0]["trajectories"].shape[0] == 2 and runner.calls == 1


def test_split_over_two_tasks_then_merge_equals_one_process(
    tmp_path, six_scenes, random_saved_model
):
    kwargs = {"shard_size": 2, "seed": 11, "batch_size": 2}
    one = wosac_submission.write_submission(
        random_saved_model, six_scenes, str(tmp_path / "one"), METADATA, **kwargs
    )
    assert one["scenarios_written"] == 6 and one["num_shards"] == 3

    split = tmp_path / "split"
    first = wosac_submission.write_submission(
        random_saved_model,
        six_scenes,
        str(split),
        METADATA,
        task=task_split.TaskSpec(0, 2),
        **kwargs,
    )
    assert first["task"] == "task_00000-of-00002" and first["scenarios_written"] == 4
    assert not (split / "submission.tar.gz").exists()
    with pytest.raises(ValueError, match="1 of 3 shards are not written yet.*00001-of-00003"):
        wosac_submission.merge(str(split))
    wosac_submission.write_submission(
        random_saved_model,
        six_scenes,
        str(split),
        METADATA,
        task=task_split.TaskSpec(1, 2),
        **kwargs,
    )
    merged = wosac_submission.merge(str(split))
    assert merged["scenarios_written"] == 6
    assert merged["tasks"] == ["task_00000-of-00002", "task_00001-of-00002"]

    a, b = _members(one["tarball"]), _members(merged["tarball"])
    assert list(a) == [f"submission.binproto-0000{k}-of-00003" for k in range(3)]
    assert a == b  # the same shards, byte for byte, in shard order
    for name, data in a.items():
        assert (tmp_path / "one" / name).read_bytes() == data
    # The tarball itself is the same file: fragments have fixed headers and gzip mtimes.
    with open(one["tarball"], "rb") as f1, open(merged["tarball"], "rb") as f2:
        assert f1.read() == f2.read()
    assert [i for m in sorted(a) for i in _scenario_ids(a[m])] == [
        f"{s.scenario_id}_{c}" for c in range(3) for _, s in read_scenarios()
    ]


def test_merge_rejects_a_bad_shard(tmp_path, six_scenes, cv_saved_model):
    out = tmp_path / "o"
    wosac_submission.write_submission(
        cv_saved_model, six_scenes, str(out), METADATA, shard_size=3, batch_size=3
    )
    shard = out / "submission.binproto-00001-of-00002"
    good = shard.read_bytes()
    shard.write_bytes(b"not a proto")
    # A shard whose fragment exists was checked by its task; without one, merge checks it.
    (out / "tar_parts" / "submission.binproto-00001-of-00002.tar.gz.part").unlink()
    with pytest.raises(ValueError, match="00001-of-00002: not a SimAgentsChallengeSubmission"):
        wosac_submission.merge(str(out))
    parsed = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(good)
    del parsed.scenario_rollouts[0].joint_scenes[5]
    shard.write_bytes(parsed.SerializeToString())
    with pytest.raises(ValueError, match="31 joint rollouts, WOSAC needs 32"):
        wosac_submission.merge(str(out))
    (out / "plan.json").unlink()
    with pytest.raises(FileNotFoundError, match="no plan.json"):
        wosac_submission.merge(str(out))


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "export.wosac_submission", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_cli_tasks_on_localhost_and_merge(tmp_path, six_scenes, random_saved_model):
    one = wosac_submission.write_submission(
        random_saved_model,
        six_scenes,
        str(tmp_path / "one"),
        METADATA,
        shard_size=2,
        seed=4,
        batch_size=3,
    )
    out = tmp_path / "split"
    common = [
        f"--saved_model={random_saved_model}",
        f"--scenarios={six_scenes}",
        f"--output_dir={out}",
        "--shard_size=2",
        "--seed=4",
        "--batch_size=3",
        *METADATA_FLAGS,
    ]
    # Task 1 from TF_CONFIG (as launch/multi_worker.sh writes it), task 0 from flags.
    tf_config = json.dumps(
        {
            "cluster": {"worker": ["localhost:1", "localhost:2"]},
            "task": {"type": "worker", "index": 1},
        }
    )
    env_run = subprocess.run(
        [sys.executable, "-m", "export.wosac_submission", *common],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=tf_config),
    )
    assert env_run.returncode == 0, env_run.stderr[-3000:]
    assert json.loads(env_run.stdout)["task"] == "task_00001-of-00002"
    assert "scene/s" in env_run.stderr  # the progress bar's rate
    flag_run = _cli(*common, "--task_index=0", "--num_tasks=2")
    assert flag_run.returncode == 0, flag_run.stderr[-3000:]
    merged = _cli("merge", f"--output_dir={out}")
    assert merged.returncode == 0, merged.stderr[-3000:]
    totals = json.loads(merged.stdout)
    assert totals["scenarios_written"] == 6
    assert _members(totals["tarball"]) == _members(one["tarball"])


_MIRRORED = textwrap.dedent("""
    import sys, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from export import wosac_submission
    from tests.export.test_wosac_submission import METADATA
    model, scenes, out = sys.argv[1:4]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    totals = wosac_submission.write_submission(model, scenes, out, METADATA, shard_size=3,
                                               seed=2, batch_size=2, strategy=strategy)
    print("REPLICAS", strategy.num_replicas_in_sync, totals["scenarios_written"])
""")


@pytest.mark.slow
def test_two_replicas_write_the_same_shards_as_one_device(tmp_path, six_scenes, random_saved_model):
    one = wosac_submission.write_submission(
        random_saved_model,
        six_scenes,
        str(tmp_path / "one"),
        METADATA,
        shard_size=3,
        seed=2,
        batch_size=2,
    )
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED, random_saved_model, six_scenes, str(tmp_path / "two")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REPLICAS 2 6" in proc.stdout
    two = json.loads((tmp_path / "two" / "stats.json").read_text())
    assert _members(two["tarball"]) == _members(one["tarball"])
    np.testing.assert_equal(two["scenarios_written"], 6)


@pytest.mark.slow
def test_evaluate_batched_saved_model_and_images(tmp_path, random_saved_model):
    from PIL import Image

    from motion_sim import evaluate
    from tests.fixtures import SCENARIO_FILES

    results = evaluate.evaluate(
        ",".join(SCENARIO_FILES),
        saved_model=random_saved_model,
        batch_size=2,
        images_dir=str(tmp_path / "img"),
        num_images=1,
    )
    assert results["num_scenarios"] == 2 and results["fallback"]["num_scenarios"] == 2
    (png,) = results["images"]
    assert Image.open(png).size == (1200, 620)
    events = [n for n in os.listdir(tmp_path / "img") if n.startswith("events.out.tfevents")]
    assert len(events) == 1
