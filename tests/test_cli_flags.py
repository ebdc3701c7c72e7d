"""No module defines absl flags when imported: CLIs define theirs in `define_flags()`, called
under `if __name__ == "__main__":`. Flags are process-global, so two modules that defined
flags at import time would clash the moment one imports the other (or a test imports both).

Checked by parsing: every `flags.DEFINE_*` / `flags.mark_*` call must sit inside a function or
the `__main__` block, never in module-level code.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from tests.fixtures import REPO

_PACKAGES = ("motion_sim", "export")


def _sources() -> list[str]:
    paths = []
    for package in _PACKAGES:
        for dirpath, _, filenames in os.walk(os.path.join(REPO, package)):
            paths += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
    return sorted(paths)


def _is_main_block(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def _flag_calls_at_import(path: str) -> list[int]:
    """Line numbers of flag definitions that run when `path` is imported."""
    lines = []
    for stmt in ast.parse(open(path).read(), path).body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if _is_main_block(stmt):
            continue
        for node in ast.walk(stmt):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "flags"
                and node.func.attr.startswith(("DEFINE", "mark_flag"))
            ):
                lines.append(node.lineno)
    return lines


def test_no_module_defines_flags_when_imported():
    offenders = {
        os.path.relpath(p, REPO): lines for p in _sources() if (lines := _flag_calls_at_import(p))
    }
    assert not offenders, (
        f"flags defined at import time (move them into define_flags()): {offenders}"
    )


def test_the_parser_sees_a_module_level_definition(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(
        "from absl import flags\n"
        "def define_flags():\n    flags.DEFINE_string('a', None, '')\n"
        "X = flags.DEFINE_integer('b', 0, '')\n"
        "if __name__ == '__main__':\n    flags.DEFINE_bool('c', False, '')\n"
    )
    assert _flag_calls_at_import(str(path)) == [4]


@pytest.mark.slow  # five processes importing TensorFlow: ~35 s on the shared box
@pytest.mark.parametrize(
    "module",
    [
        "motion_sim.data.preprocess",
        "motion_sim.benchmarks.rollout",
        "motion_sim.benchmarks.preprocess",
        "motion_sim.benchmarks.metrics",
        "motion_sim.benchmarks.train_step",
    ],
)
def test_cli_help_lists_its_flags(module):
    """`--helpshort` of each CLI whose flags moved into define_flags() still lists them."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--helpshort"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    # absl exits 1 after printing help; an import or flag-definition error would print a
    # traceback instead. absl lists the flags of the __main__ module under its file path.
    assert module.replace(".", "/") + ".py:\n  --" in result.stdout, result.stdout[-2000:]
