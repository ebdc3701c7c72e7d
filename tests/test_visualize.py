"""`python -m motion_sim.visualize` end to end: SavedModel on a Scenario proto, rollouts file on
a scene shard."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from export import export_model
from export.export_baseline import baseline_rollouts
from motion_sim.data import datatypes
from motion_sim.metrics import rollouts_io
from motion_sim.sampler import Sampler
from motion_sim.tokenizer import ActionTokenizer
from tests.fixtures import REPO, SCENARIO_FILE
from tests.fixtures import policy as policy_fixtures
from tests.fixtures import training as fixtures

SCENARIO = SCENARIO_FILE
SCENARIO_ID = "637f20cafde22ff8"


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "motion_sim.visualize", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        check=False,
    )


@pytest.mark.slow
def test_saved_model_on_a_scenario_proto(tmp_path):
    model = policy_fixtures.tiny_model(max_steps=16)
    tokenizer = ActionTokenizer()
    Sampler(model, tokenizer, num_rollouts=1)(
        policy_fixtures.womd_scene(num_agents=datatypes.MAX_AGENTS), tf.constant([0, 0])
    )
    saved = export_model.export_policy(model, tokenizer, str(tmp_path / "model"), num_rollouts=4)
    proc = _cli(
        f"--scenario={SCENARIO}",
        f"--saved_model={saved}",
        f"--output_dir={tmp_path / 'out'}",
        "--rollout=2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["scenario_id"] == SCENARIO_ID
    assert result["agents"] == 50 and result["rollouts"] == 4
    assert Image.open(result["png"]).size == (1200, 620)
    assert result["gif"].endswith(f"{SCENARIO_ID}_rollout2.gif")
    assert len(imageio.mimread(result["gif"])) == 81
    assert imageio.get_reader(result["mp4"]).count_frames() == 81


@pytest.mark.slow
def test_rollouts_file_on_a_scene_shard(tmp_path):
    shards = fixtures.preprocess_sample(str(tmp_path / "data"))
    scenario = next(s for _, s in rollouts_io.read_scenarios(SCENARIO))
    rollouts = baseline_rollouts("constant_velocity", scenario, num_rollouts=32)
    path = tmp_path / "cv.binproto"
    path.write_bytes(rollouts.SerializeToString())
    proc = _cli(
        f"--scenes={shards}",
        f"--rollouts={path}",
        f"--scenario_id={SCENARIO_ID}",
        f"--output_dir={tmp_path / 'out'}",
        "--formats=png",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rollouts"] == 32 and result["agents"] == 50
    assert sorted(os.listdir(tmp_path / "out")) == [f"{SCENARIO_ID}.png"]
    rgb = np.asarray(Image.open(result["png"]).convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 100

    bad = _cli(
        f"--scenes={shards}",
        f"--rollouts={path}",
        "--scenario_id=nope",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert bad.returncode == 2 and "no scenario 'nope'" in bad.stderr
