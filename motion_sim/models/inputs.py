"""Which `Scene` fields the model reads, and conversion of a (batched) scene to model inputs."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from motion_sim.data import datatypes

# Fields the policy reads (scenario_id / ids / frame stay out of the model: strings and float64).
MODEL_SCENE_FIELDS = (
    "agent_xy",
    "agent_vel",
    "agent_heading",
    "agent_size",
    "agent_type",
    "agent_valid",
    "agent_mask",
    "map_xy",
    "map_type",
    "map_valid",
    "tl_xy",
    "tl_state",
    "tl_valid",
)


def scene_inputs(scene) -> dict:
    """`Scene` NamedTuple or dict with a leading batch axis -> dict of the model's tensors,
    cast to the `datatypes.scene_spec` dtypes."""
    scene = datatypes.scene_fields(scene)
    missing = [k for k in MODEL_SCENE_FIELDS if k not in scene]
    if missing:
        raise ValueError(f"scene is missing fields {missing}")
    spec = datatypes.scene_spec()
    # Cast to the contract's dtypes (numpy maths on a scene easily promotes float32 to float64).
    return {k: tf.cast(scene[k], spec[k][1]) for k in MODEL_SCENE_FIELDS}


def dummy_scene_inputs(batch: int = 1, num_agents: int = datatypes.MAX_AGENTS) -> dict:
    """All-zero model inputs (one valid agent per scene) -- builds the weights."""
    spec = datatypes.scene_spec()
    out = {}
    for name in MODEL_SCENE_FIELDS:
        shape, dtype = spec[name]
        if name.startswith("agent_"):
            shape = (num_agents,) + tuple(shape[1:])
        out[name] = np.zeros((batch,) + tuple(shape), dtype)
    out["agent_mask"][:, 0] = True
    out["agent_valid"][:, 0] = True
    return {k: tf.constant(v) for k, v in out.items()}
