"""Learning-rate schedule values, interval triggers and the strategy factory's default choice."""

import json
import logging
import math

import pytest
import tensorflow as tf

from motion_sim.learner import strategy as strategy_lib
from motion_sim.learner.optimization import WarmupDecay
from motion_sim.learner.triggers import IntervalTrigger, StepRateLogger


def test_warmup_cosine_values():
    s = WarmupDecay(peak=1.0, warmup_steps=10, decay_steps=100, kind="cosine", final_fraction=0.1)
    assert float(s(0)) == pytest.approx(0.1)  # (0 + 1) / 10 of the way up
    assert float(s(9)) == pytest.approx(1.0)
    assert float(s(60)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert float(s(110)) == pytest.approx(0.1)
    assert float(s(10**6)) == pytest.approx(0.1)


def test_linear_and_bad_kind():
    s = WarmupDecay(peak=2.0, warmup_steps=0, decay_steps=10, kind="linear")
    assert float(s(5)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kind"):
        WarmupDecay(kind="step")


def test_interval_trigger_fires_on_chunks():
    fired = []
    t = IntervalTrigger(10, fired.append)
    for step in (4, 8, 12, 16, 20, 24, 28, 32):  # steps_per_loop = 4: never divisible hits
        t(step)
    t(32, force=True)
    assert fired == [12, 24, 32]


def test_step_rate_logger_prints_one_line_per_interval(capsys, caplog):
    caplog.set_level(logging.INFO, logger="absl")  # a second copy via absl would show here
    logger = StepRateLogger(max_steps=40, interval=10)
    for step in range(0, 41, 5):  # the first call starts the clock
        logger(step, {"train/loss": 1.5, "train/other": 2.0})
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert [line.split()[1] for line in lines] == ["10/40", "20/40", "30/40", "40/40"]
    assert all(line.endswith("loss=1.5") for line in lines)  # headline metrics only
    assert "step " not in out.err and not [r for r in caplog.records if "steps/s" in r.message]


def test_default_strategy_on_cpu_and_bad_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert strategy_lib.get_strategy(use_gpu=False) is tf.distribute.get_strategy()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        strategy_lib.get_strategy(use_gpu=False)
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}),
    )
    assert strategy_lib.get_strategy(use_gpu=False) is tf.distribute.get_strategy()  # 1 task
