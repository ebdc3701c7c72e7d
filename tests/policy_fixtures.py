"""Fixtures for the policy tests (layers / models / sampler): a real WOMD scene, tiny models.

The scene is the bundled WOMD Scenario proto (83 tracks) built by the production
`scene_builder`, optionally cut to its first `num_agents` agents (SDC first) so tests stay fast.
"""
from __future__ import annotations

import functools
import os

import gin
import numpy as np
import tensorflow as tf

from motion_sim.data.scenario_reader import read_scenario_files
from motion_sim.data.scene_builder import build_scene
from motion_sim.models.sim_agent_model import SimAgentModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO_FILE = os.path.join(REPO, "motion_sim", "data", "sample",
                             "motion_data_one_scenario.tfrecord")
GIN_DIR = os.path.join(REPO, "gin")


@functools.lru_cache(maxsize=None)
def _scene():
    raw = next(iter(read_scenario_files(SCENARIO_FILE)))
    scene, _ = build_scene(raw)
    return scene


def womd_scene(num_agents: int = 8, batch: int = 1) -> dict:
    """The real scene as a batched dict of numpy arrays, agents cut to `num_agents`."""
    scene = _scene()._asdict()
    out = {}
    for name, value in scene.items():
        value = np.asarray(value)
        if name.startswith("agent_") or name == "tracks_to_predict":
            value = value[:num_agents]
        out[name] = np.stack([value] * batch)
    return out


def model_from_gin(gin_name: str, **overrides) -> SimAgentModel:
    """Builds `SimAgentModel` from gin/<gin_name>.gin (+ keyword overrides)."""
    with gin.unlock_config():
        gin.clear_config()
        gin.parse_config_file(os.path.join(GIN_DIR, f"{gin_name}.gin"))
    model = SimAgentModel(**overrides)
    gin.clear_config()
    return model


def tiny_model(**overrides) -> SimAgentModel:
    tf.keras.utils.set_random_seed(0)
    return model_from_gin("model_tiny", **overrides)
