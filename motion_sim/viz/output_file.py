"""Atomic output files for pictures and animations: written to a temp file, then renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator


def _default_mode() -> int:
    # mkstemp creates 0600 files; outputs get the usual umask-derived mode instead.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yields a temp path beside `path` (same extension, so writers pick the format from it);
    renames it to `path` when the block succeeds, removes it when it fails."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.tmp-", suffix=suffix, dir=directory
    )
    os.close(fd)
    try:
        os.chmod(tmp, _default_mode())
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
