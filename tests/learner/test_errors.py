"""Bad configuration and bad data fail clearly, before any training step."""

import os

import pytest
import tensorflow as tf

import gin
from motion_sim import train as train_lib
from motion_sim.learner import checkpointing, gin_config
from tests.fixtures import training as fixtures


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _train(tmp_path, files, bindings):
    train_lib.parse_gin(files, bindings)
    return train_lib.train(str(tmp_path / "run"))


def test_unknown_binding(tmp_path):
    with pytest.raises(gin_config.ConfigError, match="No configurable matching 'NoSuchThing'"):
        train_lib.parse_gin(["gin/demo_pretrain.gin"], ["NoSuchThing.x = 1"])


def test_missing_gin_file():
    with pytest.raises(gin_config.ConfigError, match="gin/nope.gin does not exist"):
        train_lib.parse_gin(["gin/nope.gin"], [])


def test_missing_required_value(tmp_path):
    # demo.gin leaves DEMO_DATA = %gin.REQUIRED.
    with pytest.raises(
        gin_config.ConfigError, match="DEMO_DATA.*REQUIRED.*not subsequently overridden"
    ):
        _train(tmp_path, ["gin/demo_pretrain.gin"], [])
    assert not os.path.exists(tmp_path / "run")


def test_missing_data_path(tmp_path):
    with pytest.raises(gin_config.ConfigError, match="matches no files"):
        _train(
            tmp_path, ["gin/demo_pretrain.gin"], [f"DEMO_DATA = '{tmp_path}/none/*.tfrecord.gz'"]
        )
    assert not os.path.exists(tmp_path / "run")


def test_empty_dataset(tmp_path):
    empty = tmp_path / "empty.tfrecord"
    with tf.io.TFRecordWriter(str(empty)):
        pass
    with pytest.raises(ValueError, match="is empty"):
        _train(tmp_path, ["gin/demo_pretrain.gin"], [f"DEMO_DATA = '{empty}'"])
    assert not os.path.exists(tmp_path / "run")


def test_finetune_needs_existing_pretrained_checkpoint(tmp_path):
    with pytest.raises(checkpointing.CheckpointError, match="no checkpoint found"):
        _train(
            tmp_path,
            ["gin/demo_finetune.gin"],
            [f"DEMO_DATA = '{tmp_path}/x'", f"PRETRAINED_CHECKPOINT = '{tmp_path}'"],
        )


def test_paper_finetune_config_fails_clearly_from_cli(tmp_path):
    """The real entry point with the paper config and nothing else: exit 2, a one-line reason."""
    proc = fixtures.run_cli(str(tmp_path / "run"), ["gin/finetune_10m.gin"], timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "motion_sim.train: error:" in proc.stderr
    assert "PRETRAINED_CHECKPOINT" in proc.stderr or "init_checkpoint" in proc.stderr
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_deterministic_refuses_multi_worker(tmp_path):
    tf_config = (
        '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    proc = fixtures.run_cli(
        str(tmp_path / "run"),
        ["gin/demo_pretrain.gin"],
        ["DEMO_DATA='x'"],
        timeout=300,
        extra_flags=["--deterministic"],
        env_extra={"TF_CONFIG": tf_config},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "--deterministic is for single-host runs" in proc.stderr
    assert not os.path.exists(tmp_path / "run")


def test_rl_without_policy_is_refused_unless_from_scratch_is_asked_for(tmp_path):
    # No PRETRAINED_CHECKPOINT: an error that names the explicit way to train from scratch.
    with pytest.raises(gin_config.ConfigError, match="train.rl_from_scratch=True"):
        _train(
            tmp_path,
            ["gin/demo_finetune.gin"],
            [f"DEMO_DATA = '{tmp_path}/x'", "PRETRAINED_CHECKPOINT = None"],
        )
    gin.clear_config()
    # Asking for both a pre-trained policy and "from scratch" is contradictory.
    with pytest.raises(
        gin_config.ConfigError,
        match="rl_from_scratch=True is for mode 'rl' without a pre-trained policy",
    ):
        _train(
            tmp_path,
            ["gin/demo_finetune.gin"],
            [
                f"DEMO_DATA = '{tmp_path}/x'",
                f"PRETRAINED_CHECKPOINT = '{tmp_path}'",
                "train.rl_from_scratch = True",
            ],
        )
    gin.clear_config()
    with pytest.raises(gin_config.ConfigError, match="rl_from_scratch=True is for mode 'rl'"):
        _train(
            tmp_path,
            ["gin/demo_pretrain.gin"],
            [f"DEMO_DATA = '{tmp_path}/x'", "train.rl_from_scratch = True"],
        )
    assert not os.path.exists(tmp_path / "run")


def test_rl_from_scratch_trains_when_asked_for(tmp_path):
    data = fixtures.preprocess_sample(str(tmp_path / "data"))
    metrics = _train(
        tmp_path,
        ["gin/demo_finetune.gin"],
        [
            f"DEMO_DATA = '{data}'",
            "PRETRAINED_CHECKPOINT = None",
            "train.rl_from_scratch = True",
            "train.max_steps = 1",
            "train.steps_per_loop = 1",
            "Sampler.num_rollouts = 2",
        ],
    )
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert "rl/collision_rate" in metrics  # an RL step ran


def test_bad_mode_and_unset_run_settings_are_config_errors(tmp_path):
    with pytest.raises(gin_config.ConfigError, match=r"train.mode must be one of \['bc', 'rl'\]"):
        _train(tmp_path, ["gin/demo_pretrain.gin"], ["DEMO_DATA = 'x'", "train.mode = 'ppo'"])
    gin.clear_config()
    with pytest.raises(
        gin_config.ConfigError, match="train.mode, train.train_data, train.max_steps not set"
    ):
        _train(tmp_path, ["gin/model_tiny.gin"], [])
    assert not os.path.exists(tmp_path / "run")


def test_bad_hyperparameter_is_a_config_error_from_where_it_is_built(tmp_path):
    """A ValueError raised while gin builds the model is reported as a ConfigError (main turns
    it into a one-line exit-2 message), not matched by its text."""
    data = fixtures.preprocess_sample(str(tmp_path / "data"))
    with pytest.raises(gin_config.ConfigError, match="hidden=33 must be divisible by num_heads=2"):
        _train(
            tmp_path,
            ["gin/demo_pretrain.gin"],
            [f"DEMO_DATA = '{data}'", "SimAgentModel.hidden = 33"],
        )
