"""CI runs the fast and slow tiers whatever the runner's environment, and every run of the test
command says which tiers ran and how many tests each had (`tests/conftest.py`)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from tests import conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = "tests/testdata/tiers/check_tiers.py"  # one trivial test per tier


def _run(command: list[str], **env_extra) -> str:
    """Runs a test command on the per-tier check file in a clean environment (no CI, no
    MOTION_SIM_* tier variables); returns stdout + stderr."""
    venv = sys.prefix
    # tools/ensure_env.sh rebuilds the venv if its lock stamp differs: never let a test do that.
    with open(os.path.join(REPO, "env", "requirements.lock"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(venv, ".lock-sha256")) as f:
        assert f.read().strip() == want, f"{venv} is not built from this lock"
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "CI" and not k.startswith("MOTION_SIM_") and not k.startswith("PYTEST_")
    }
    env.update(MOTION_SIM_VENV=venv, PYTHONPATH=REPO, **env_extra)
    proc = subprocess.run(
        command + [CHECK, "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def test_ci_runs_fast_and_slow_without_ci_variable():
    out = _run(["bash", ".ci/run"])
    assert "tiers run: fast, slow" in out, out[-2000:]
    assert "tier fast: run, 1 tests: 1 passed" in out
    assert "tier slow: run, 1 tests: 1 passed" in out
    assert "tier long: not run, 0 tests (1 deselected)" in out


def test_default_command_runs_fast_tier_only():
    out = _run(["bash", "tools/test.sh"])
    assert "tiers run: fast\n" in out, out[-2000:]
    assert "tier fast: run, 1 tests: 1 passed" in out
    assert "tier slow: not run, 0 tests (1 deselected)" in out


def test_long_variable_runs_every_tier():
    out = _run(["bash", "tools/test.sh"], MOTION_SIM_LONG="1")
    assert "tiers run: fast, slow, long" in out, out[-2000:]
    assert "tier long: run, 1 tests: 1 passed" in out


@pytest.mark.parametrize(
    "expr, tiers",
    [
        ("", ["fast", "slow", "long"]),
        ("not slow and not long", ["fast"]),
        ("not long", ["fast", "slow"]),
        ("slow", ["slow"]),
    ],
)
def test_tiers_selected(expr, tiers):
    assert conftest.tiers_selected(expr) == tiers
