"""Serving contract: input spec, scene -> world transform, atomic export."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from export import scene_input, signature
from motion_sim.agents.constant_velocity import ConstantVelocityAgent
from motion_sim.data import datatypes, frames


def test_input_spec_is_scene_spec_with_batch_axis_and_seed():
    specs = signature.serving_input_spec()
    scene = datatypes.scene_spec()
    assert set(specs) == set(scene) | {"seed"}
    for name, (shape, dtype) in scene.items():
        assert specs[name].shape.as_list() == [None] + list(shape), name
        want = tf.string if dtype is np.object_ else tf.as_dtype(dtype)
        assert specs[name].dtype == want, name
        assert specs[name].name == name
    assert specs["seed"].shape.as_list() == [2] and specs["seed"].dtype == tf.int64


def test_to_world_matches_scene_builder_inverse():
    rng = np.random.default_rng(0)
    batch = 3
    origin = np.stack(
        [
            rng.uniform(-9000, 9000, batch),
            rng.uniform(-9000, 9000, batch),
            rng.uniform(-50, 50, batch),
        ],
        axis=-1,
    )
    yaw = rng.uniform(-np.pi, np.pi, batch)
    world_xy = origin[:, None, None, :2] + rng.uniform(-150, 150, (batch, 2, 5, 2))
    world_heading = rng.uniform(-np.pi, np.pi, (batch, 2, 5))
    world_z = origin[:, None, None, 2] + rng.uniform(-3, 3, (batch, 2, 5))
    scene_xy, scene_heading = [], []
    for b in range(batch):
        frame = {"frame_origin": origin[b], "frame_yaw": yaw[b]}
        xy, h = frames.to_scene(world_xy[b], world_heading[b], frame)
        scene_xy.append(xy)
        scene_heading.append(h)
    scene = np.concatenate(
        [
            np.float32(scene_xy),
            np.float32(world_z - origin[:, None, None, 2])[..., None],
            np.float32(scene_heading)[..., None],
        ],
        axis=-1,
    )
    world = signature.to_world(tf.constant(scene), tf.constant(origin), tf.constant(yaw)).numpy()
    assert world.dtype == np.float32
    # float32 storage at ~1e4 m world coordinates: ~1 mm steps; scene-frame float32 ~1e-5 m.
    np.testing.assert_allclose(world[..., :2], world_xy, atol=2e-3, rtol=0)
    np.testing.assert_allclose(world[..., 2], world_z, atol=1e-4, rtol=0)
    dh = frames.wrap_angle(world[..., 3] - world_heading)
    np.testing.assert_allclose(dh, 0.0, atol=1e-5)
    assert np.all(world[..., 3] >= -np.pi) and np.all(world[..., 3] < np.pi)


def _scene_batch(scenarios, rows=slice(None)):
    return scene_input.stack_scenes(
        [scene_input.scene_from_scenario(s, src) for src, s in scenarios[rows]]
    )


def test_serving_outputs_and_padding(scenarios):
    serving = signature.SimAgentServing(ConstantVelocityAgent(), num_rollouts=4)
    inputs = _scene_batch(scenarios)
    out = serving.run(inputs, [1, 2])
    assert out["trajectories"].shape == (len(scenarios), 4, datatypes.MAX_AGENTS, 80, 4)
    assert out["trajectories"].dtype == np.float32
    np.testing.assert_array_equal(out["object_ids"], inputs["agent_id"])
    np.testing.assert_array_equal(out["agent_mask"], inputs["agent_mask"])
    padding = ~inputs["agent_mask"]  # [B, A]
    assert padding.any() and inputs["agent_mask"].any()
    assert np.all(out["trajectories"].transpose(0, 2, 1, 3, 4)[padding] == 0)
    assert np.all(np.abs(out["trajectories"].transpose(0, 2, 1, 3, 4)[~padding][..., :2]) > 0)


def test_bad_output_shape_is_refused(scenarios):
    def wrong(scene, seed, num_rollouts):
        return tf.zeros(
            tf.stack([tf.shape(scene["agent_mask"])[0], num_rollouts, datatypes.MAX_AGENTS, 10, 4])
        )

    serving = signature.SimAgentServing(wrong, num_rollouts=2)
    with pytest.raises(ValueError, match=r"\[B, R, A, 80, 4\]"):
        serving.run(_scene_batch(scenarios, slice(0, 1)), [0, 0])


def test_export_is_atomic_and_replaces(tmp_path):
    target = tmp_path / "model"
    signature.export_sim_agent(ConstantVelocityAgent(), str(target), num_rollouts=2)
    signature.export_sim_agent(ConstantVelocityAgent(), str(target), num_rollouts=3)
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temp or .old directory left behind
    loaded = tf.saved_model.load(str(target))
    assert (
        loaded.signatures["serving_default"].structured_outputs["trajectories"].shape[1] == 3
    )  # the second export replaced the first

    def broken(scene, seed, num_rollouts):
        raise RuntimeError("agent bug")

    with pytest.raises(RuntimeError, match="agent bug"):
        signature.export_sim_agent(broken, str(tmp_path / "other"))
    assert sorted(os.listdir(tmp_path)) == ["model"]  # a failed export leaves nothing
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("not a model")
    with pytest.raises(FileExistsError, match="not a SavedModel"):
        signature.export_sim_agent(ConstantVelocityAgent(), str(precious))
    assert (precious / "notes.txt").read_text() == "not a model"


def test_plain_function_agent_exports_and_keeps_its_variables(scenarios, tmp_path):
    speed_up = tf.Variable(2.0)  # a trained weight stand-in: must be saved with the model

    def faster_cv(scene, seed, num_rollouts):
        scaled = dict(scene, agent_vel=scene["agent_vel"] * speed_up)
        return ConstantVelocityAgent().simulate(scaled, seed, num_rollouts)

    serving = signature.SimAgentServing(faster_cv, num_rollouts=2)
    serving.speed_up = speed_up  # tracked through the serving module
    path = signature.export_sim_agent(serving, str(tmp_path / "fn"))
    inputs = _scene_batch(scenarios, slice(0, 1))
    from export import loader

    got = loader.load_sim_agent(path).run(inputs, [0, 0])["trajectories"]
    want = serving.run(inputs, [0, 0])["trajectories"]
    np.testing.assert_array_equal(got, want)
    plain = signature.SimAgentServing(ConstantVelocityAgent(), 2).run(inputs, [0, 0])
    assert np.abs(got - plain["trajectories"]).max() > 1.0  # the variable took effect
