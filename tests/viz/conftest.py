"""Fixtures of the picture tests: the shared WOMD scene sampled by a small demo policy."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.sampler import Sampler
from motion_sim.tokenizer import ActionTokenizer
from motion_sim.viz import rollout_events, rollout_view
from tests.fixtures import policy as policy_fixtures

NUM_ROLLOUTS = 4


@pytest.fixture(scope="session")
def demo_view() -> rollout_view.RolloutView:
    scene = policy_fixtures.womd_scene(num_agents=datatypes.MAX_AGENTS)  # every agent, B = 1
    model = policy_fixtures.tiny_model(max_steps=16)
    sampler = Sampler(model, ActionTokenizer(), num_rollouts=NUM_ROLLOUTS)
    sampler(scene, tf.constant([0, 0], tf.int32))  # builds the weights
    rng = np.random.default_rng(1)
    model.set_weights(
        [w + rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    out = sampler(scene, tf.constant([0, 1], tf.int32))
    unbatched = {k: v[0] for k, v in scene.items()}
    return rollout_view.make_view(unbatched, out.xy.numpy()[0], out.heading.numpy()[0])


@pytest.fixture(scope="session")
def demo_events(demo_view) -> rollout_events.RolloutEvents:
    return rollout_events.find_events(demo_view)
