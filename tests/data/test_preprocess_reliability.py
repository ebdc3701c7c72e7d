"""preprocess under bad inputs and reruns (issue 15): one bad file never stops a batch, resumes
never mix plans, one writer per output directory, one rule for duplicate ids.

In-process (`preprocess.run` / `preprocess.main`) so the whole file stays in the fast tier.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from motion_sim.data import preprocess, run_lock, shard_writer
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.scene_codec import decode_scene
from motion_sim.data.synthetic import SyntheticScenarioGenerator
from tests.fixtures import GPUDRIVE_FILE, cli
from tests.fixtures import SCENARIO_FILE as LIGHTS_FILE  # scenario 637f20cafde22ff8
from tests.fixtures import WOMD_SCENARIO_FILE as WOMD_FILE  # scenario ee519cf571686d19


def _scene_ids(output_dir):
    """Scenario ids of every scene the training glob would read, in file order."""
    ids = []
    for path in sorted(tf.io.gfile.glob(os.path.join(output_dir, "*.tfrecord.gz"))):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            ids.append(decode_scene(record.numpy())[0].scenario_id.item())
    return ids


def _main(capsys, **flag_values):
    """preprocess.main with these flags; returns (exit status, stderr)."""
    with cli.program_flags(preprocess.define_flags, **flag_values):
        status = preprocess.main([])
    return status, capsys.readouterr().err


def _gpudrive(tmp_path, name, edit=None):
    with open(GPUDRIVE_FILE) as f:
        scenario = json.load(f)
    if edit:
        edit(scenario)
    path = tmp_path / name
    path.write_text(json.dumps(scenario))
    return str(path)


def _assert_stats_match_disk(output_dir):
    with open(os.path.join(output_dir, "stats.json")) as f:
        stats = json.load(f)
    on_disk = sorted(n for n in os.listdir(output_dir) if ".tfrecord" in n)
    assert stats["output_files"] == on_disk
    assert stats["scenarios_written"] == len(_scene_ids(output_dir))
    return stats


def test_malformed_files_are_skipped_named_and_fail_the_exit_status(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = _gpudrive(inputs, "a_good.json")

    def wide(s):
        s["objects"][3]["width"] = "wide"

    def bad_lights(s):
        s["tl_states"] = {"17": {"state": ["stop", "go"], "x": [1.0], "y": [2.0]}}

    _gpudrive(inputs, "b_wide.json", wide)
    _gpudrive(inputs, "c_lights.json", bad_lights)
    (inputs / "d_dir.json").mkdir()  # a directory matched by the glob
    out = str(tmp_path / "out")
    status, err = _main(capsys, input=str(inputs / "*.json"), output_dir=out, format="gpudrive")
    assert status == 1
    stats = _assert_stats_match_disk(out)
    assert stats["scenarios_read"] == 4 and stats["scenarios_written"] == 1
    assert _scene_ids(out) == ["1c365f15b70ebdbf"]
    assert stats["skipped"] == {"bad_record": 2, "not_a_file": 1}
    examples = [m for ms in stats["skipped_examples"].values() for m in ms]
    assert any("b_wide.json:0: object" in m and "'wide'" in m for m in examples)
    assert any("c_lights.json:0: traffic light of lane 17" in m for m in examples)
    assert any("d_dir.json:0: is a directory" in m for m in examples)
    assert "d_dir.json" in err  # unreadable input is a failure: named on stderr, exit 1
    assert good  # the good file's scene is the one written


def test_unexpected_reader_exception_is_isolated_to_its_record(tmp_path, capsys, monkeypatch):
    """A reader bug (any exception, not only ScenarioError) skips one record, named."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    _gpudrive(inputs, "a_good.json")
    _gpudrive(inputs, "b_boom.json")
    real = shard_writer._read

    def flaky(fmt, source, payload):
        if "b_boom" in source:
            raise IndexError("list index out of range")
        return real(fmt, source, payload)

    monkeypatch.setattr(shard_writer, "_read", flaky)
    out = str(tmp_path / "out")
    status, err = _main(capsys, input=str(inputs / "*.json"), output_dir=out, format="gpudrive")
    assert status == 1
    stats = _assert_stats_match_disk(out)
    assert stats["scenarios_written"] == 1 and stats["skipped"] == {"unexpected_IndexError": 1}
    assert "b_boom.json:0: IndexError: list index out of range" in err


def test_directory_matched_by_the_glob_fails_only_its_unit(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(WOMD_FILE, inputs / "a.tfrecord")
    (inputs / "b.tfrecord").mkdir()
    out = str(tmp_path / "out")
    status, err = _main(capsys, input=str(inputs / "*.tfrecord"), output_dir=out, format="scenario")
    assert status == 1
    stats = _assert_stats_match_disk(out)
    [(name, error)] = stats["failed_units"].items()
    assert name.startswith("b-") and "b.tfrecord: is a directory" in error
    assert stats["failed_unit_reasons"] == {"not_a_file": 1}
    assert _scene_ids(out) == ["ee519cf571686d19"]
    assert "b.tfrecord: is a directory" in err


def test_dangling_input_link_fails_only_its_unit(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(WOMD_FILE, inputs / "a.tfrecord")
    os.symlink(tmp_path / "gone.tfrecord", inputs / "b.tfrecord")  # unreadable input
    out = str(tmp_path / "out")
    status, err = _main(capsys, input=str(inputs / "*.tfrecord"), output_dir=out, format="scenario")
    assert status == 1
    stats = _assert_stats_match_disk(out)
    assert stats["failed_unit_reasons"] == {"unreadable": 1}
    assert f"{inputs / 'b.tfrecord'}: cannot read" in err
    assert _scene_ids(out) == ["ee519cf571686d19"]


def test_wrong_format_fails_loudly_and_the_right_one_then_runs(tmp_path, capsys):
    out = str(tmp_path / "out")
    status, err = _main(capsys, input=WOMD_FILE, output_dir=out, format="example")
    assert status == 1
    assert "no scenes written" in err and "--format=example" in err and WOMD_FILE in err
    # The wrong-format unit wrote no shard: nothing to mix, so the rerun just works.
    status, err = _main(capsys, input=WOMD_FILE, output_dir=out, format="scenario")
    assert status == 0, err
    stats = _assert_stats_match_disk(out)
    assert stats["scenarios_written"] == 1 and stats["units_skipped_as_done"] == 0


def test_empty_input_fails_loudly(tmp_path, capsys):
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    status, err = _main(
        capsys, input=str(empty), output_dir=str(tmp_path / "out"), format="scenario"
    )
    assert status == 1 and "input files hold no records" in err and str(empty) in err


def test_added_gpudrive_file_is_refused_not_mixed(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _gpudrive(inputs, "a.json")
    out = str(tmp_path / "out")
    preprocess.run(str(inputs / "*.json"), out, "gpudrive")
    before = sorted(os.listdir(out))

    def other_id(s):
        s["scenario_id"] = "another"

    _gpudrive(inputs, "b.json", other_id)
    with pytest.raises(
        preprocess.StaleOutputError,
        match=r"1 input\(s\) added: .*b\.json.*Start fresh: use a new "
        r"--output_dir, or delete",
    ):
        preprocess.run(str(inputs / "*.json"), out, "gpudrive")
    assert sorted(os.listdir(out)) == before  # nothing mixed in
    assert _scene_ids(out) == ["1c365f15b70ebdbf"]
    fresh = str(tmp_path / "fresh")
    preprocess.run(str(inputs / "*.json"), fresh, "gpudrive")
    assert sorted(_scene_ids(fresh)) == ["1c365f15b70ebdbf", "another"]
    _assert_stats_match_disk(fresh)


def test_added_tfrecord_file_resumes_and_stats_list_every_shard(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(WOMD_FILE, inputs / "a.tfrecord")
    out = str(tmp_path / "out")
    preprocess.run(str(inputs / "*.tfrecord"), out, "scenario")
    shutil.copy(LIGHTS_FILE, inputs / "b.tfrecord")
    stats = preprocess.run(str(inputs / "*.tfrecord"), out, "scenario")
    assert stats["units_skipped_as_done"] == 1 and stats["units_processed"] == 1
    stats = _assert_stats_match_disk(out)
    assert sorted(_scene_ids(out)) == ["637f20cafde22ff8", "ee519cf571686d19"]


def test_regenerated_input_or_other_compression_is_refused(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(WOMD_FILE, inputs / "a.tfrecord")
    out = str(tmp_path / "out")
    preprocess.run(str(inputs / "a.tfrecord"), out, "scenario")
    with pytest.raises(preprocess.StaleOutputError, match="compression 'GZIP' -> 'NONE'"):
        preprocess.run(str(inputs / "a.tfrecord"), out, "scenario", compression="NONE")
    shutil.copy(LIGHTS_FILE, inputs / "a.tfrecord")  # same path, other content
    with pytest.raises(preprocess.StaleOutputError, match=r"1 input\(s\) changed"):
        preprocess.run(str(inputs / "a.tfrecord"), out, "scenario")
    assert _scene_ids(out) == ["ee519cf571686d19"]


def test_duplicate_scenario_ids_keep_the_first_copy(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    gen = SyntheticScenarioGenerator(num_agents=8, seed=3)
    one, two = gen.generate(0), gen.generate(1)
    # Same id twice inside a.tfrecord, and again in b.tfrecord (another unit).
    with tf.io.TFRecordWriter(str(inputs / "a.tfrecord")) as w:
        for raw in (one, two, one):
            w.write(to_scenario_proto(raw).SerializeToString())
    with tf.io.TFRecordWriter(str(inputs / "b.tfrecord")) as w:
        w.write(to_scenario_proto(two).SerializeToString())
    out = str(tmp_path / "out")
    stats = preprocess.run(str(inputs / "*.tfrecord"), out, "scenario")
    assert sorted(_scene_ids(out)) == sorted([one.scenario_id, two.scenario_id])
    assert stats["skipped"] == {"duplicate_scenario_id": 2}
    messages = stats["skipped_examples"]["duplicate_scenario_id"]
    assert any("a.tfrecord:2" in m and "a.tfrecord:0" in m for m in messages)
    assert any("b.tfrecord:0" in m and "a.tfrecord:1" in m for m in messages)
    _assert_stats_match_disk(out)
    # Resume: nothing left to drop, same totals.
    again = preprocess.run(str(inputs / "*.tfrecord"), out, "scenario")
    assert again["skipped"] == stats["skipped"]
    assert again["scenarios_written"] == stats["scenarios_written"] == 2


def test_duplicate_object_ids_skip_the_scene(tmp_path):
    gen = SyntheticScenarioGenerator(num_agents=8, seed=4)
    raw = gen.generate(0)
    track_id = raw.track_id.copy()
    track_id[3] = track_id[raw.sdc_index]
    path = tmp_path / "dup.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(to_scenario_proto(raw._replace(track_id=track_id)).SerializeToString())
    stats = preprocess.run(str(path), str(tmp_path / "out"), "scenario")
    assert stats["skipped"] == {"duplicate_object_id": 1}
    [message] = stats["skipped_examples"]["duplicate_object_id"]
    assert "dup.tfrecord:0" in message and str(track_id[3]) in message


def test_non_utf8_and_very_long_file_names(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    long_name = "L" * 240 + ".tfrecord"
    shutil.copy(WOMD_FILE, inputs / long_name)
    stats = preprocess.run(str(inputs / "*.tfrecord"), str(tmp_path / "out"), "scenario")
    assert stats["scenarios_written"] == 1 and not stats["failed_units"]
    bad = os.fsdecode(os.path.join(os.fsencode(str(inputs)), b"bad\xff.tfrecord"))
    shutil.copy(WOMD_FILE, bad)
    with pytest.raises(ValueError, match=r"bad\\udcff\.tfrecord'?: file name is not valid UTF-8"):
        preprocess.run(str(inputs / "*.tfrecord"), str(tmp_path / "out2"), "scenario")


def test_unwritable_output_dir_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(run_lock.RunLockError, match=f"{blocker}/out: cannot write"):
        preprocess.run(WOMD_FILE, str(blocker / "out"), "scenario")


def test_second_writer_on_one_output_dir_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / run_lock.LOCK_NAME).write_text(
            json.dumps(
                {
                    "host": os.uname().nodename,
                    "pid": holder.pid,
                    "purpose": "preprocess",
                    "started": "2026-01-01T00:00:00+00:00",
                }
            )
        )
        with pytest.raises(run_lock.RunLockError, match=f"in use by another run.*{holder.pid}"):
            preprocess.run(WOMD_FILE, str(out), "scenario")
        assert not [n for n in os.listdir(out) if ".tfrecord" in n]
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up: its lock is stale and the next run takes over.
    stats = preprocess.run(WOMD_FILE, str(out), "scenario")
    assert stats["scenarios_written"] == 1
    assert not (out / run_lock.LOCK_NAME).exists()
