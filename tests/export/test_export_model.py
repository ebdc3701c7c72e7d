"""Export of a trained policy: run config, checked restore, SavedModel == in-process sampler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from export import export_model, loader, scene_input, signature
from export.model_sim_agent import ModelSimAgent, row_seed
from motion_sim.models.sim_agent_model import SimAgentModel
from motion_sim.sampler import Sampler
from motion_sim.tokenizer import ActionTokenizer
from tests.fixtures import scenarios as export_testdata

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
NUM_ROLLOUTS = 4
STEP = 7
# Smaller than gin/model_tiny.gin (which the default token rate / width would not show).
HPARAMS = dict(
    num_encoder_layers=1,
    num_decoder_layers=1,
    hidden=16,
    num_heads=2,
    ffn_dim=32,
    encoder_mlp_width=16,
    dropout=0.0,
    max_steps=16,
)
# Shaped like motion_sim.train's operative_config.gin: bindings of configurables the exporter
# does not import (train, optimizer, schedule) and macros must be skipped, not fatal.
OPERATIVE_CONFIG = textwrap.dedent("""\
    DEMO_DATA = '/nowhere/*.tfrecord.gz'
    ActionTokenizer.max_accel = 6.0
    ActionTokenizer.num_bins = 13
    ActionTokenizer.token_hz = 2
    BCLoss.label_smoothing = 0.0
    make_optimizer.learning_rate = @WarmupDecay()
    WarmupDecay.peak = 0.003
    train.mode = 'bc'
    train.train_data = %DEMO_DATA
    """) + "".join(f"SimAgentModel.{k} = {v!r}\n" for k, v in HPARAMS.items())


def _trained_model(seed: int) -> SimAgentModel:
    """A tiny model whose weights are far from any fresh initialisation (seeded noise)."""
    tf.keras.utils.set_random_seed(seed)
    model = SimAgentModel(**HPARAMS)
    rng = np.random.default_rng(seed)
    model.set_weights(
        [w + rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model


def _write_run(root, model, step=STEP, config=OPERATIVE_CONFIG):
    """A run directory laid out like the learner's: operative_config.gin + checkpoints/ckpt-N."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "operative_config.gin"), "w") as f:
        f.write(config)
    optimizer = tf.keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    ckpt = tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=tf.Variable(step, dtype=tf.int64)
    )
    tf.train.CheckpointManager(ckpt, os.path.join(root, "checkpoints"), 3).save(
        checkpoint_number=step
    )
    return str(root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model = _trained_model(seed=1)
    root = _write_run(tmp_path_factory.mktemp("run") / "run", model)
    out = export_model.export_run(
        root, str(tmp_path_factory.mktemp("export") / "model"), num_rollouts=NUM_ROLLOUTS
    )
    return model, root, out


@pytest.fixture(scope="module")
def two_scenes(scenarios):
    return scene_input.stack_scenes(
        [scene_input.scene_from_scenario(s, src) for src, s in scenarios]
    )


def test_rebuilds_the_run_config_and_restores_its_weights(trained):
    model, root, _ = trained
    policy = export_model.load_trained_policy(root)
    unnamed = lambda m: {k: v for k, v in m.get_config().items() if k != "name"}  # noqa: E731
    assert unnamed(policy.model) == unnamed(model)
    assert policy.tokenizer.token_hz == 2 and policy.tokenizer.num_tokens == 16
    assert policy.step == STEP
    assert policy.checkpoint.endswith(f"ckpt-{STEP}")
    for got, want in zip(policy.model.weights, model.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.name)


def test_sim_agent_json_records_parameters_and_provenance(trained):
    model, root, export_dir = trained
    info = loader.read_sim_agent_info(export_dir)
    assert info["num_model_parameters"] == model.count_params() > 1000
    assert info["step"] == STEP
    assert info["checkpoint"] == os.path.join(os.path.abspath(root), "checkpoints", f"ckpt-{STEP}")
    assert info["num_rollouts"] == NUM_ROLLOUTS
    assert info["model_config"]["hidden"] == 16
    assert info["tokenizer"] == {
        "token_hz": 2,
        "num_tokens": 16,
        "vocab_size": 169,
        "num_bins": 13,
        "max_accel": 6.0,
        "still_distance": 0.05,
    }
    assert info["sampling"] == {"temperature": 1.0, "top_k": 0, "top_p": 1.0}


# The SavedModel is loaded and run in a fresh interpreter where any `import motion_sim...` fails:
# it needs TensorFlow alone (like a serving / submission box). One load = one XLA compile, so
# every run the tests compare is made here and saved for the parent to check.
_TF_ONLY = export_testdata.BLOCK_MOTION_SIM + textwrap.dedent("""
    import numpy as np
    from export.loader import load_sim_agent, read_sim_agent_info
    data = np.load(sys.argv[1], allow_pickle=True)
    both = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
    first = {k: v[:1] for k, v in both.items()}
    agent = load_sim_agent(sys.argv[2])
    seed = data["seed"]
    runs = dict(both=agent.run(both, seed)["trajectories"],
                again=agent.run(both, seed)["trajectories"],
                other_seed=agent.run(both, seed + 1)["trajectories"],
                first_alone=agent.run(first, seed)["trajectories"],
                object_ids=agent.run(first, seed)["object_ids"])
    np.savez(sys.argv[3], **runs)
    assert not any(m == "motion_sim" or m.startswith("motion_sim.") for m in sys.modules)
    print("ok", agent.num_rollouts, read_sim_agent_info(sys.argv[2])["num_model_parameters"])
""")


@pytest.fixture(scope="module")
def tf_only_runs(trained, two_scenes, tmp_path_factory):
    """Outputs of the exported model run with TensorFlow only (see `_TF_ONLY`)."""
    model, _, export_dir = trained
    tmp = tmp_path_factory.mktemp("tf_only")
    seed = np.array([3, 2**33 + 5], np.int64)
    np.savez(tmp / "case.npz", seed=seed, **{"in_" + k: v for k, v in two_scenes.items()})
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _TF_ONLY, str(tmp / "case.npz"), export_dir, str(tmp / "runs.npz")],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ok {NUM_ROLLOUTS} {model.count_params()}" in result.stdout
    return seed, dict(np.load(tmp / "runs.npz"))


def test_saved_model_equals_in_process_sampler(trained, two_scenes, tf_only_runs):
    """World-frame rollouts of the SavedModel == `Sampler` on the checkpointed model."""
    model, _, _ = trained
    seed, runs = tf_only_runs
    out = runs["both"]
    assert out.shape == (2, NUM_ROLLOUTS, 128, 80, 4)
    sampler = Sampler(model, tokenizer=ActionTokenizer(token_hz=2), num_rollouts=NUM_ROLLOUTS)
    for b in range(2):
        scene = {k: v[b : b + 1] for k, v in two_scenes.items()}
        ref = sampler(scene, row_seed(tf.constant(seed), b))
        mask = scene["agent_mask"][0]
        assert mask.sum() > 10
        traj = out[b]  # [R, A, 80, 4]
        # World frame vs the sampler's own world output: 1e-4 m, plus the float32 spacing of
        # the coordinate itself (4.9e-4 m at 8 km), since both round a float64 transform.
        want_xy = ref.world_xy.numpy()[0][:, mask]
        tol = 1e-4 + np.spacing(np.abs(want_xy).astype(np.float32))
        assert np.all(np.abs(traj[:, mask, :, :2] - want_xy) <= tol)
        # And bit-identical to the contract's transform of the sampler's scene-frame rollout:
        # the SavedModel draws exactly the same samples.
        ref_scene = tf.concat([ref.xy, tf.zeros_like(ref.xy)], axis=-1)
        ref_world = signature.to_world(ref_scene, scene["frame_origin"], scene["frame_yaw"])
        np.testing.assert_array_equal(traj[:, mask, :, :2], ref_world.numpy()[0][:, mask, :, :2])
        dh = traj[..., 3][:, mask] - ref.world_heading.numpy()[0][:, mask]
        assert np.abs((dh + np.pi) % (2 * np.pi) - np.pi).max() < 1e-5
        # Height: every agent holds its current z (world = scene z + frame origin z).
        z_now = scene["agent_z"][0, mask, 10].astype(np.float64) + scene["frame_origin"][0, 2]
        z = traj[..., 2][:, mask]  # [R, agents, 80]
        np.testing.assert_allclose(z, np.broadcast_to(z_now[None, :, None], z.shape), atol=1e-3)
        assert not traj[:, ~mask].any(), "padding rows must be zero"
        # Sampling is real: rollouts of one scene differ.
        assert np.abs(traj[0, mask, :, :2] - traj[1, mask, :, :2]).max() > 1e-3
    np.testing.assert_array_equal(runs["object_ids"][0], two_scenes["agent_id"][0])


def test_closed_loop_signatures_equal_in_process_stepping(trained, two_scenes):
    """The SavedModel's closed_loop_start / step == `Sampler.start` / `step` (same tokens),
    with the SDC forced to its logged tokens in R = 3 worlds; serving_default is kept."""
    model, _, export_dir = trained
    stepper = loader.ClosedLoopStepper(loader.load_sim_agent(export_dir))
    tokenizer = ActionTokenizer(token_hz=2)
    sampler = Sampler(model, tokenizer, num_rollouts=1)
    scene = {k: v[:1] for k, v in two_scenes.items()}
    logged, _ = tokenizer.encode(scene["agent_xy"], scene["agent_valid"])  # [1, A, T]
    forced = np.repeat(logged.numpy()[:, None], 3, axis=1)  # [1, R, A, T]
    mask = np.zeros(forced.shape, bool)
    mask[:, :, 0] = True
    seed = np.array([4, 9], np.int64)
    got_state, got, _ = stepper.start(scene, seed, forced[..., 0], mask[..., 0])
    want_state, want, _ = sampler.start(scene, seed, forced[..., 0], mask[..., 0])
    np.testing.assert_array_equal(got, want.numpy())
    for t in range(1, 16):
        got_state, got, _ = stepper.step(got_state, forced[..., t], mask[..., t])
        want_state, want, _ = sampler.step(want_state, forced[..., t], mask[..., t])
        np.testing.assert_array_equal(got, want.numpy())
    np.testing.assert_array_equal(got[0, :, 0], logged.numpy()[0, 0, 15])
    assert (got[0, 0] != got[0, 1]).any()  # the other agents are sampled per world
    assert loader.SIGNATURE_NAME in tf.saved_model.load(export_dir).signatures


def test_saved_model_seeds_and_batching(tf_only_runs):
    _, runs = tf_only_runs
    np.testing.assert_array_equal(runs["again"], runs["both"])  # same seed, same rollouts
    assert np.abs(runs["other_seed"] - runs["both"]).max() > 1e-3
    # A scene's rollouts do not depend on the other scenes of its batch.
    np.testing.assert_array_equal(runs["first_alone"], runs["both"][:1])


@pytest.mark.slow  # one more export + XLA compile (~35 s)
def test_sampling_settings_reach_the_graph(trained, two_scenes, tmp_path):
    """top_k=1 is greedy: every rollout identical (and different from temperature-1 samples)."""
    model, _, export_dir = trained
    greedy = export_model.export_policy(
        model, ActionTokenizer(token_hz=2), str(tmp_path / "greedy"), num_rollouts=2, top_k=1
    )
    assert loader.read_sim_agent_info(greedy)["sampling"]["top_k"] == 1
    inputs = {k: v[:1] for k, v in two_scenes.items()}
    traj = loader.load_sim_agent(greedy).run(inputs, np.array([0, 1], np.int64))["trajectories"]
    np.testing.assert_array_equal(traj[0, 0], traj[0, 1])


def test_wrong_model_size_checkpoint_is_a_clear_error(tmp_path):
    bigger = dict(HPARAMS, hidden=32)
    root = _write_run(tmp_path / "run", SimAgentModel(**bigger))  # config says hidden=16
    with pytest.raises(
        export_model.ExportError, match=r"checkpoint .*ckpt-7 does not match the model"
    ):
        export_model.load_trained_policy(root)


def test_checkpoint_without_the_model_is_a_clear_error(tmp_path):
    root = tmp_path / "run"
    _write_run(root, _trained_model(seed=2))
    other = tf.train.Checkpoint(step=tf.Variable(1, dtype=tf.int64))
    prefix = other.write(str(tmp_path / "not_a_policy" / "ckpt"))
    with pytest.raises(export_model.ExportError, match=f"checkpoint {prefix} does not match"):
        export_model.load_trained_policy(str(root), checkpoint=prefix)


def test_missing_checkpoint_and_config_are_clear_errors(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    with pytest.raises(export_model.ExportError, match=f"{root}/operative_config.gin does not"):
        export_model.load_trained_policy(str(root))
    (root / "operative_config.gin").write_text(OPERATIVE_CONFIG)
    with pytest.raises(export_model.ExportError, match=f"no checkpoint found in directory {root}"):
        export_model.load_trained_policy(str(root))
    with pytest.raises(export_model.ExportError, match=f"checkpoint {tmp_path}/nope does not"):
        export_model.load_trained_policy(str(root), checkpoint=str(tmp_path / "nope"))


def test_bad_operative_config_is_a_clear_error(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "operative_config.gin").write_text("SimAgentModel.hiddn = 16\n")
    with pytest.raises(export_model.ExportError, match="cannot build the model.*hiddn"):
        export_model.load_trained_policy(str(root))


def test_agent_refuses_another_rollout_count():
    agent = ModelSimAgent(SimAgentModel(**HPARAMS), ActionTokenizer(token_hz=2), num_rollouts=2)
    with pytest.raises(ValueError, match="samples 2 rollouts per scene"):
        agent.simulate({}, tf.constant([0, 0], tf.int64), 3)


def test_cli_reports_a_missing_run_and_exits_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.export_model",
            f"--root_dir={tmp_path / 'none'}",
            f"--output_dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    assert result.returncode == 2
    assert (
        f"export_model: error: {tmp_path / 'none'}/operative_config.gin does not exist"
        in result.stderr
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_exports_a_real_training_run(tmp_path):
    """motion_sim.train (tiny, 2 steps) -> python -m export.export_model -> loadable model."""
    from tests.fixtures.training import preprocess_sample, run_cli

    shards = preprocess_sample(str(tmp_path / "data"))
    root = tmp_path / "run"
    train = run_cli(
        str(root),
        ["gin/demo_pretrain.gin"],
        [f"DEMO_DATA='{shards}'", "train.max_steps=2", "train.steps_per_loop=1"],
    )
    assert train.returncode == 0, train.stderr[-3000:]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.export_model",
            f"--root_dir={root}",
            f"--output_dir={tmp_path / 'model'}",
            "--num_rollouts=2",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["checkpoint"].endswith("ckpt-2")
    assert summary["num_model_parameters"] == 58089  # gin/model_tiny.gin at 2 Hz
    agent = loader.load_sim_agent(summary["saved_model"])
    assert agent.num_rollouts == 2
