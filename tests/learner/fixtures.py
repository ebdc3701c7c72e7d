"""Shared fixtures of the learner tests: sample scene shards and a tiny-model gin config."""
from __future__ import annotations

import os
import subprocess
import sys

import gin

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(REPO, "motion_sim", "data", "sample")
PYTHON = sys.executable

TINY_BINDINGS = [
    "include 'gin/model_tiny.gin'",
    "SimAgentModel.max_steps = 16",
]


def preprocess_sample(out_dir: str) -> str:
    """Preprocesses the two bundled Scenario-proto files; returns the shard glob (2 scenes)."""
    from motion_sim.data import preprocess
    preprocess.run(os.path.join(SAMPLE, "*scenario*.tfrecord"), out_dir, "scenario")
    return os.path.join(out_dir, "*.tfrecord.gz")


def parse_tiny_gin(extra=()):
    import motion_sim.train  # noqa: F401 -- registers every configurable the configs name
    gin.clear_config()
    gin.add_config_file_search_path(REPO)
    gin.parse_config(list(TINY_BINDINGS) + list(extra))


def run_cli(root_dir, gin_files, bindings=(), timeout=600, env_extra=None, extra_flags=()):
    """Runs `python -m motion_sim.train` and returns the CompletedProcess (text)."""
    cmd = [PYTHON, "-m", "motion_sim.train", f"--root_dir={root_dir}", *extra_flags]
    cmd += [f"--gin_file={f}" for f in gin_files] + [f"--gin_bindings={b}" for b in bindings]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env_extra or {}))
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
