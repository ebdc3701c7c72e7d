"""RunLock: one writer per run directory, holder named, stale locks recovered."""

import json
import os
import socket
import subprocess
import sys

import pytest

from motion_sim.data import run_lock


def _write_holder(directory, **holder):
    record = {
        "host": socket.gethostname(),
        "pid": 1,
        "purpose": "training",
        "started": "2026-01-01T00:00:00+00:00",
    }
    record.update(holder)
    (directory / run_lock.LOCK_NAME).write_text(json.dumps(record))


def test_lock_records_holder_and_is_released(tmp_path):
    directory = tmp_path / "run"
    with run_lock.RunLock(str(directory), "training") as lock:
        holder = json.loads((directory / run_lock.LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert holder["purpose"] == "training" and lock.path.endswith(run_lock.LOCK_NAME)
    assert not (directory / run_lock.LOCK_NAME).exists()


def test_live_holder_on_this_host_is_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_holder(tmp_path, pid=holder.pid, purpose="submission")
        with pytest.raises(
            run_lock.RunLockError,
            match=rf"{tmp_path} is in use by another run \(submission, pid "
            rf"{holder.pid} on host .*delete .*{run_lock.LOCK_NAME}",
        ):
            run_lock.RunLock(str(tmp_path), "training").acquire()
    finally:
        holder.kill()
        holder.wait()
    # Same lock file, holder now dead: stale, taken over.
    with run_lock.RunLock(str(tmp_path), "training"):
        assert json.loads((tmp_path / run_lock.LOCK_NAME).read_text())["pid"] == os.getpid()


def test_holder_on_another_host_is_refused(tmp_path):
    _write_holder(tmp_path, host="some-other-host", pid=12345)
    with pytest.raises(run_lock.RunLockError, match="pid 12345 on host some-other-host"):
        run_lock.RunLock(str(tmp_path), "preprocess").acquire()


def test_recycled_pid_and_garbage_lock_are_stale(tmp_path):
    _write_holder(tmp_path, pid=os.getpid())  # a previous incarnation with our pid
    with run_lock.RunLock(str(tmp_path), "training"):
        pass
    (tmp_path / run_lock.LOCK_NAME).write_text("{half-writ")
    with pytest.raises(run_lock.RunLockError, match="being taken by another run"):
        run_lock.RunLock(str(tmp_path), "training").acquire()  # may be mid-write: too young
    os.utime(tmp_path / run_lock.LOCK_NAME, (0, 0))  # written long ago: a crash mid-write
    with run_lock.RunLock(str(tmp_path), "training"):
        pass


def test_release_leaves_another_holders_lock_alone(tmp_path):
    lock = run_lock.RunLock(str(tmp_path), "training").acquire()
    _write_holder(tmp_path, host="some-other-host", pid=7)  # e.g. removed by hand, retaken
    lock.release()
    assert json.loads((tmp_path / run_lock.LOCK_NAME).read_text())["pid"] == 7


def test_unwritable_directory_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(run_lock.RunLockError, match=f"{tmp_path}/file/run: cannot write"):
        run_lock.RunLock(str(tmp_path / "file" / "run"), "training").acquire()


def test_named_locks_let_designed_co_writers_share_a_directory(tmp_path):
    # The tasks of a split submission job share one --output_dir, each under its own lock.
    with run_lock.RunLock(str(tmp_path), "submission", lock_name=".motion_sim.task_0.lock"):
        _write_holder(tmp_path, pid=1, host="other-host")  # someone else holds the default
        with run_lock.RunLock(str(tmp_path), "submission", lock_name=".motion_sim.task_1.lock"):
            assert (tmp_path / ".motion_sim.task_1.lock").exists()
        with pytest.raises(run_lock.RunLockError, match="in use by another run"):
            run_lock.RunLock(str(tmp_path), "submission").acquire()
