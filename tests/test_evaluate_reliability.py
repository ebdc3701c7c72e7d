"""`motion_sim.evaluate` output handling (issue 15): an unwritable --output is refused before
any scoring, and outputs get the usual umask-derived permissions (not mkstemp's 0600)."""

import os
import stat
import subprocess
import sys

import pytest

from motion_sim.metrics import results as results_lib
from motion_sim.metrics import rollout_checks, rollouts_io
from tests.fixtures import WOMD_SCENARIO_FILE


def test_unwritable_output_fails_before_scoring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "wosac.json"
    # --scenarios matches nothing: had scoring started, that would be the error reported.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_sim.evaluate",
            f"--scenarios={tmp_path}/none/*",
            "--rollouts=x",
            f"--output={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"evaluate: error: --output {out}: cannot write here ({blocker} is a file, not a folder)"
    )


def test_output_that_is_a_directory_or_too_long_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"{tmp_path}: is a directory"):
        results_lib.check_writable(tmp_path)
    long_name = tmp_path / ("x" * 250 + ".json")
    with pytest.raises(OSError, match=f"{long_name}: cannot write here"):
        results_lib.check_writable(long_name)


def test_outputs_are_written_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        results_lib.write_json(tmp_path / "out.json", {"a": 1})
        results_lib.write_text_atomic(tmp_path / "out.md", "| x |\n")
    finally:
        os.umask(old)
    for name in ("out.json", "out.md"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644


def test_truncated_scenario_file_is_one_line_without_tf_internals(tmp_path):
    with open(WOMD_SCENARIO_FILE, "rb") as f:
        good = f.read()
    path = tmp_path / "truncated.tfrecord"
    path.write_bytes(good + good[:1000])
    with pytest.raises(rollout_checks.RolloutError) as info:
        list(rollouts_io.read_scenarios(str(path)))
    message = str(info.value)
    assert f"{path}:1" in message and "corrupt or truncated TFRecord" in message
    assert "function_node" not in message and "[Op:" not in message
