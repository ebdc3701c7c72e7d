"""ExportTrigger: interval / force semantics, and a real export of a strategy-placed model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from export import export_trigger
from motion_sim.models.sim_agent_model import SimAgentModel
from motion_sim.tokenizer import ActionTokenizer

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


@pytest.fixture
def recorded(monkeypatch):
    """Replaces the SavedModel write by a record of (step, dir, weights) -- for the schedule."""
    from export import export_model

    calls = []

    def fake_export(model, tokenizer, output_dir, **kwargs):
        calls.append((kwargs["step"], output_dir, [w.copy() for w in model.get_weights()]))
        return output_dir

    monkeypatch.setattr(export_model, "export_policy", fake_export)
    return calls


def test_exports_every_interval_and_once_at_the_end(tmp_path, recorded):
    model = SimAgentModel(**HPARAMS)
    trigger = export_trigger.ExportTrigger(
        10, str(tmp_path), model, ActionTokenizer(), num_rollouts=2
    )
    trigger.reset(0)
    for step in (5, 10, 15, 20):  # steps advance by steps_per_loop = 5
        trigger(step)
    trigger(20, force=True)  # end of training right after a periodic export: no duplicate
    trigger(23, force=True)
    assert [c[0] for c in recorded] == [10, 20, 23]
    assert recorded[0][1] == os.path.join(str(tmp_path), "export", "step_0000010")
    assert trigger.exported == {
        s: export_trigger.export_dir_for_step(str(tmp_path), s) for s in (10, 20, 23)
    }


def test_exports_a_copy_of_the_current_weights(tmp_path, recorded):
    model = SimAgentModel(**HPARAMS)
    trigger = export_trigger.ExportTrigger(1, str(tmp_path), model, ActionTokenizer())
    trigger(1)
    model.set_weights([w + 1.0 for w in model.get_weights()])  # "training" continues
    trigger(2)
    first, second = recorded[0][2], recorded[1][2]
    for a, b, now in zip(first, second, model.get_weights()):
        np.testing.assert_array_equal(a + 1.0, b)
        np.testing.assert_array_equal(b, now)


def test_resumed_run_does_not_export_at_once(tmp_path, recorded):
    trigger = export_trigger.ExportTrigger(
        100, str(tmp_path), SimAgentModel(**HPARAMS), ActionTokenizer(), start=250
    )
    trigger(260)
    trigger(350)
    assert [c[0] for c in recorded] == [350]


def test_gin_factory(tmp_path):
    model, tok = SimAgentModel(**HPARAMS), ActionTokenizer()
    assert export_trigger.make_export_triggers(str(tmp_path), model, tok) == []  # default off
    assert (
        export_trigger.make_export_triggers(str(tmp_path), model, tok, interval=5, is_chief=False)
        == []
    )
    (t,) = export_trigger.make_export_triggers(str(tmp_path), model, tok, interval=5, top_k=3)
    assert t.interval == 5 and t.sampling["top_k"] == 3 and t.sampling["num_rollouts"] == 32


def test_real_export_of_a_mirrored_model(tmp_path):
    """Weights of a model built under a strategy land in an atomic, loadable SavedModel."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = SimAgentModel(**HPARAMS)
    model.set_weights([w + 0.5 for w in model.get_weights()])
    trigger = export_trigger.ExportTrigger(
        10, str(tmp_path), model, ActionTokenizer(), num_rollouts=2
    )
    trigger(10)
    path = os.path.join(str(tmp_path), "export", "step_0000010")
    assert sorted(os.listdir(os.path.join(str(tmp_path), "export"))) == ["step_0000010"]
    with open(os.path.join(path, "sim_agent.json")) as f:
        info = json.load(f)
    assert info["step"] == 10 and info["num_rollouts"] == 2
    assert info["num_model_parameters"] == model.count_params()
    # The saved variables are exactly the training weights (no XLA compile needed to check).
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    saved = [
        reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.startswith("agent/model/")
    ]
    assert len(saved) == len(model.weights)
    want = sorted(float(np.sum(w, dtype=np.float64)) for w in model.get_weights())
    got = sorted(float(np.sum(w, dtype=np.float64)) for w in saved)
    np.testing.assert_allclose(got, want, rtol=1e-6)
