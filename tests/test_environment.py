"""The pinned stack imports (the paper's conflicting pins resolved by env/requirements.lock)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_pinned_module_imports():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_imports.py")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tensorflow 2.13" in out.stdout


def test_lock_pins_every_package_exactly():
    lines = [line.strip() for line in (ROOT / "env" / "requirements.lock").read_text().splitlines()]
    reqs = [line for line in lines if line and not line.startswith("#")]
    assert all("==" in r for r in reqs), [r for r in reqs if "==" not in r]
    names = {r.split("==")[0].lower() for r in reqs}
    for must in [
        "tensorflow",
        "tensorflow-probability",
        "waymo-open-dataset-tf-2-12-0",
        "tf-agents",
        "absl-py",
        "gin-config",
        "tensorboard",
        "pytest",
    ]:
        assert must in names, must
