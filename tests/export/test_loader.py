"""`load_sim_agent`: runs every baseline SavedModel with TensorFlow only; clear load errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from export import loader, scene_input, signature
from export.export_baseline import BASELINES, make_baseline
from tests.fixtures import scenarios as export_testdata

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Runs in a fresh interpreter where any `import motion_sim...` fails: proves the exported graph
# and the loader need TensorFlow alone (what a separate serving / submission box has).
_NO_MOTION_SIM = export_testdata.BLOCK_MOTION_SIM + textwrap.dedent("""
    try:
        import export.signature  # imports motion_sim: must fail, or the block is not working.
        raise SystemExit("motion_sim import was not blocked")
    except ImportError:
        pass
    import numpy as np
    from export.loader import load_sim_agent
    data = np.load(sys.argv[1], allow_pickle=True)
    inputs = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
    for kind in sys.argv[2:]:
        agent = load_sim_agent(data["dir_" + kind].item())
        out = agent.run(inputs, data["seed"])
        for key, value in out.items():
            np.testing.assert_array_equal(value, data[kind + "_" + key], err_msg=kind + key)
        print(kind, agent.num_rollouts, out["trajectories"].shape)
    assert not any(m == "motion_sim" or m.startswith("motion_sim.") for m in sys.modules)
""")


def test_baselines_run_without_motion_sim(scenarios, tmp_path):
    inputs = scene_input.stack_scenes(
        [scene_input.scene_from_scenario(s, src) for src, s in scenarios]
    )
    seed = np.array([7, 11], np.int64)
    arrays = {"in_" + k: v for k, v in inputs.items()}
    arrays["seed"] = seed
    for kind in BASELINES:
        path = signature.export_sim_agent(make_baseline(kind), str(tmp_path / kind), 4)
        expected = signature.SimAgentServing(make_baseline(kind), 4).run(inputs, seed)
        arrays["dir_" + kind] = np.array(path, dtype=object)
        for key, value in expected.items():
            arrays[f"{kind}_{key}"] = value
    np.savez(tmp_path / "case.npz", **arrays)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _NO_MOTION_SIM, str(tmp_path / "case.npz"), *BASELINES],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for kind in BASELINES:
        assert f"{kind} 4 (2, 4, 128, 80, 4)" in result.stdout


def test_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(loader.SimAgentLoadError, match="no such SavedModel directory"):
        loader.load_sim_agent(str(tmp_path / "nope"))


def test_unreadable_saved_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad_model"
    bad.mkdir()
    (bad / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    with pytest.raises(loader.SimAgentLoadError, match=f"{bad}: cannot load SavedModel"):
        loader.load_sim_agent(str(bad))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(loader.SimAgentLoadError, match=f"{empty}: cannot load SavedModel"):
        loader.load_sim_agent(str(empty))


def test_saved_model_without_the_contract_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(
        lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None], tf.float32)]
    )
    tf.saved_model.save(
        module,
        str(tmp_path / "other"),
        signatures={"serving_default": module.f.get_concrete_function()},
    )
    with pytest.raises(loader.SimAgentLoadError, match="not a sim-agent model"):
        loader.load_sim_agent(str(tmp_path / "other"))
    tf.saved_model.save(module, str(tmp_path / "nosig"), signatures={})
    with pytest.raises(loader.SimAgentLoadError, match="no 'serving_default' signature"):
        loader.load_sim_agent(str(tmp_path / "nosig"))
