"""A non-finite loss never changes weights or optimizer state; K in a row abort the run."""

import numpy as np
import pytest
import tensorflow as tf

from motion_sim import tokenizer as tokenizer_lib
from motion_sim.data import pipeline
from motion_sim.learner.learner import Learner, NonFiniteLossError
from motion_sim.losses.bc_loss import BCLoss
from motion_sim.losses.loss_output import LossOutput
from motion_sim.models.sim_agent_model import SimAgentModel
from tests.fixtures import training as fixtures


class PoisonedBC:
    """BCLoss whose loss becomes NaN while `poison` is True (e.g. a corrupt batch)."""

    def __init__(self):
        self.inner = BCLoss(tokenizer=tokenizer_lib.ActionTokenizer())
        self.metric_names = self.inner.metric_names
        self.poison = tf.Variable(False)

    def __call__(self, model, scene):
        out = self.inner(model, scene)
        loss = out.loss * tf.where(self.poison, float("nan"), 1.0)
        return LossOutput(loss, dict(out.metrics, **{"bc/loss": loss}))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return fixtures.preprocess_sample(str(tmp_path_factory.mktemp("scenes")))


def _learner(root, shards, loss, max_steps, k=3):
    fixtures.parse_tiny_gin()
    tf.keras.utils.set_random_seed(0)
    model = SimAgentModel()
    return Learner(
        str(root),
        tf.distribute.get_strategy(),
        model,
        tf.keras.optimizers.AdamW(1e-3),
        loss,
        lambda ctx: pipeline.make_dataset(shards, 2, shuffle=False, input_context=ctx),
        max_steps=max_steps,
        steps_per_loop=2,
        checkpoint_interval=2,
        summary_interval=2,
        log_interval=100,
        max_consecutive_nonfinite=k,
    )


def test_skips_then_recovers(tmp_path, shards):
    loss = PoisonedBC()
    learner = _learner(tmp_path, shards, loss, max_steps=2)
    before = [w.copy() for w in learner.model.get_weights()]
    loss.poison.assign(True)
    learner.run()  # 2 poisoned steps, under the limit of 3
    after = learner.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert int(learner.optimizer.iterations) == 0  # no slot / iteration update either
    assert int(learner.nonfinite_total) == 2 and int(learner.step) == 2
    # The checkpoint written at step 2 holds the untouched (finite) weights.
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    for name in reader.get_variable_to_shape_map():
        if name.startswith("model/") and "OPTIMIZER_SLOT" not in name:
            assert np.all(np.isfinite(reader.get_tensor(name)))
    loss.poison.assign(False)
    learner.max_steps = 4
    metrics = learner.run()
    assert int(learner.optimizer.iterations) == 2 and int(learner.nonfinite_run) == 0
    assert np.isfinite(metrics["bc/loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, learner.model.get_weights()))


def test_aborts_after_k_in_a_row(tmp_path, shards):
    loss = PoisonedBC()
    loss.poison.assign(True)
    learner = _learner(tmp_path, shards, loss, max_steps=10, k=3)
    with pytest.raises(NonFiniteLossError, match="consecutive steps with a non-finite loss"):
        learner.run()
    assert int(learner.optimizer.iterations) == 0
