"""One writer per run directory: an exclusive lock file naming its holder.

Training (`--root_dir`), preprocessing (`--output_dir`) and the submission writer
(`--output_dir`) each hold `<dir>/.motion_sim.lock` while they write, so a second run started on
the same directory stops at once with a line naming the holder instead of interleaving its
checkpoints, shards or event files with the first one's.

The lock file is created with O_CREAT | O_EXCL (atomic on local and NFSv3+ file systems) and
holds JSON {host, pid, purpose, started}. A lock left behind by a crash (kill -9, power loss) is
recognised as stale when its holder ran on this host and that pid is no longer alive (or is this
very process, i.e. a recycled pid in a fresh container), and is then replaced with a warning. A
lock held on another host cannot be checked from here: the error says how to remove it by hand.
Object stores (gs://) have no exclusive create; there the lock is advisory (written, not raced).

Multi-worker training: only the chief takes the lock; the other workers write only their own
`.worker_<i>` / `data_worker_<i>` sub-directories, which the chief's lock covers.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import socket
import time
from typing import Self

import tensorflow as tf
from absl import logging

LOCK_NAME = ".motion_sim.lock"
_YOUNG_LOCK_S = 5.0


class RunLockError(RuntimeError):
    """The directory is locked by a live run, or cannot be written; the message names it."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_local(path: str) -> bool:
    return "://" not in path


class RunLock:
    """Exclusive lock of `directory` for the lifetime of a `with` block (or acquire/release).

    Args:
      directory: the run directory (created if missing).
      purpose: what holds it ("training", "preprocess", "submission"), shown to a second run.
      lock_name: the lock file's name; writers that share a directory by design (the tasks of
        a split submission job) each take their own.
    """

    def __init__(self, directory: str, purpose: str, lock_name: str = LOCK_NAME):
        self.directory = directory
        self.purpose = purpose
        self.path = os.path.join(directory, lock_name)
        self._held = False

    def _record(self) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "purpose": self.purpose,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }

    def _read_holder(self) -> dict | None:
        try:
            with tf.io.gfile.GFile(self.path, "r") as f:
                return json.loads(f.read())
        except (tf.errors.NotFoundError, FileNotFoundError):
            return None
        except (ValueError, tf.errors.OpError, OSError):
            return {}  # half-written by a crashed run, or unreadable: judged below

    def _is_stale(self, holder: dict) -> bool:
        if not holder:
            # Unparsable: a crash mid-write long ago is stale; a lock younger than a few seconds
            # may be a live run between its create and its write.
            try:
                age = time.time() - tf.io.gfile.stat(self.path).mtime_nsec / 1e9
            except tf.errors.NotFoundError:
                return False
            if age < _YOUNG_LOCK_S:
                raise RunLockError(
                    f"{self.path} is being taken by another run (unreadable lock "
                    f"written {age:.1f} s ago); retry in a few seconds"
                )
            return True
        if holder.get("host") != socket.gethostname():
            return False  # cannot see another host's processes
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return True
        return pid == os.getpid() or not _pid_alive(pid)

    def _create(self) -> bool:
        """Writes the lock file if absent; False when it already exists."""
        data = json.dumps(self._record()).encode()
        if not _is_local(self.path):
            if tf.io.gfile.exists(self.path):
                return False
            with tf.io.gfile.GFile(self.path, "wb") as f:
                f.write(data)
            return True
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return True

    def acquire(self) -> RunLock:
        """Takes the lock.

        Raises:
          RunLockError: a live run holds it, or the directory cannot be created or written.
        """
        try:
            tf.io.gfile.makedirs(self.directory)
            for _ in range(3):  # a stale lock is removed, then the create is retried
                if self._create():
                    self._held = True
                    atexit.register(self.release)
                    return self
                holder = self._read_holder()
                if holder is None:
                    continue  # released between our create and read
                if not self._is_stale(holder):
                    raise RunLockError(
                        f"{self.directory} is in use by another run ({holder.get('purpose', '?')}"
                        f", pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
                        f"started {holder.get('started', '?')}): one writer per directory. Wait "
                        f"for it to end, use another directory, or, if that run is gone, delete "
                        f"{self.path}"
                    )
                logging.warning(
                    "%s: removing the stale lock of %s (pid %s on %s is gone)",
                    self.path,
                    holder.get("purpose", "?"),
                    holder.get("pid", "?"),
                    holder.get("host", "?"),
                )
                try:
                    tf.io.gfile.remove(self.path)
                except tf.errors.NotFoundError:
                    pass
        except (OSError, tf.errors.OpError) as e:
            what = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            raise RunLockError(
                f"{self.directory}: cannot write the run directory ({what})"
            ) from None
        raise RunLockError(f"{self.path}: could not take the lock (it keeps reappearing)")

    def release(self) -> None:
        """Removes the lock file if this object holds it (idempotent)."""
        if not self._held:
            return
        self._held = False
        atexit.unregister(self.release)
        holder = self._read_holder()
        if (
            holder
            and holder.get("pid") == os.getpid()
            and holder.get("host") == socket.gethostname()
        ):
            try:
                tf.io.gfile.remove(self.path)
            except (tf.errors.OpError, OSError) as e:
                logging.warning("%s: could not remove the lock: %s", self.path, e)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
