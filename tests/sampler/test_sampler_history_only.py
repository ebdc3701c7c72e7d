"""The sampler on a history-only (test-split) scene: it needs only steps 0..10."""

import os

import numpy as np
import pytest

from motion_sim.data.datatypes import CURRENT_INDEX
from motion_sim.data.scenario_reader import read_scenario_files
from motion_sim.data.scene_builder import build_scene
from motion_sim.sampler import Sampler
from motion_sim.tokenizer import ActionTokenizer
from tests.fixtures import SAMPLE_DIR
from tests.fixtures.policy import tiny_model

TEST_SPLIT = os.path.join(SAMPLE_DIR, "test_split_fcb5b4973f486e78.tfrecord")
A = 12  # the scene has 10 sim agents; two padded rows stay padded


@pytest.mark.slow  # ~45 s: compiles the sampler
def test_rollouts_of_a_test_split_scene():
    raw = next(read_scenario_files(TEST_SPLIT))
    assert raw.history_only
    scene, _ = build_scene(raw)
    batch = {}
    for name, value in scene._asdict().items():
        value = np.asarray(value)
        if name.startswith("agent_") or name == "tracks_to_predict":
            value = value[:A]
        batch[name] = value[None]
    assert not batch["agent_valid"][..., CURRENT_INDEX + 1 :].any()
    out = Sampler(tiny_model(), ActionTokenizer(2), num_rollouts=2)(batch, seed=3)
    xy = out.xy.numpy()
    assert xy.shape == (1, 2, A, 80, 2) and np.isfinite(xy).all()
    assert np.isfinite(out.world_xy.numpy()).all()
    real = batch["agent_mask"][0]
    assert real.sum() == 10 and not xy[0][:, ~real].any()
    # every real agent starts where the log leaves it: the first 0.1 s stays within a few m
    start = batch["agent_xy"][0, real, CURRENT_INDEX]
    assert np.abs(xy[0][:, real, 0] - start).max() < 5.0
