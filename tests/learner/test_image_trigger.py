"""Rollout pictures in TensorBoard: a short RL run's event file holds them; drawing is off-thread."""

from __future__ import annotations

import glob
import io
import os
import threading

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.util import event_pb2

import gin
from motion_sim import train as train_lib
from motion_sim.data import datatypes
from motion_sim.learner import image_trigger
from motion_sim.tokenizer import ActionTokenizer
from tests.fixtures import policy as policy_fixtures
from tests.fixtures import training as fixtures


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _images(summary_dir: str) -> dict[tuple[str, int], bytes]:
    """(tag, step) -> PNG bytes of every image summary in the event files of summary_dir."""
    out = {}
    for path in glob.glob(os.path.join(summary_dir, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    # TF2 image summaries: a string tensor [width, height, png...].
                    out[(value.tag, event.step)] = value.tensor.string_val[2]
    return out


@pytest.mark.slow
def test_short_rl_run_writes_rollout_pictures(tmp_path):
    shards = fixtures.preprocess_sample(str(tmp_path / "data"))
    data = f"DEMO_DATA = '{shards}'"
    train_lib.parse_gin(["gin/demo_pretrain.gin"], [data, "train.max_steps = 1"])
    train_lib.train(str(tmp_path / "bc"))
    gin.clear_config()
    train_lib.parse_gin(
        ["gin/demo_finetune.gin"],
        [
            data,
            f"PRETRAINED_CHECKPOINT = '{tmp_path / 'bc'}'",
            "train.max_steps = 4",
            "train.steps_per_loop = 2",
            "make_image_triggers.interval = 2",
        ],
    )
    train_lib.train(str(tmp_path / "rl"))

    images = _images(str(tmp_path / "rl" / "train"))
    first = image_trigger.first_scene(shards)["scenario_id"][0].decode()
    assert sorted(images) == [(f"rollouts/{first}", 2), (f"rollouts/{first}", 4)]
    picture = Image.open(io.BytesIO(images[(f"rollouts/{first}", 4)])).convert("RGB")
    assert picture.size == (800, 416)
    assert len(np.unique(np.asarray(picture).reshape(-1, 3), axis=0)) > 100
    with open(tmp_path / "rl" / "operative_config.gin") as f:
        assert "make_image_triggers.interval = 2" in f.read()


class _Writer:
    """Stands in for the summary writer (the drawing itself is replaced in this test)."""

    def as_default(self, step):
        return tf.summary.create_noop_writer().as_default(step=step)

    def flush(self):
        pass


def test_drawing_runs_off_the_training_thread_and_skips_when_busy(monkeypatch):
    scene = policy_fixtures.womd_scene(num_agents=datatypes.MAX_AGENTS)
    model = policy_fixtures.tiny_model(max_steps=16)
    trigger = image_trigger.ImageSummaryTrigger(
        2, _Writer(), model, ActionTokenizer(), scene, num_rollouts=2
    )
    release = threading.Event()
    threads = []

    def slow_draw(step, xy, heading):
        threads.append(threading.current_thread().name)
        assert xy.shape == (2, datatypes.MAX_AGENTS, 80, 2)
        release.wait(60)
        trigger.written.append(step)

    monkeypatch.setattr(trigger, "_draw", slow_draw)
    trigger(2)  # samples, hands the drawing to the thread
    trigger(4)  # still drawing step 2: skipped, training goes on
    assert trigger.skipped == 1 and trigger.written == []
    release.set()
    trigger.wait()
    trigger(6, force=True)  # the final picture is drawn and waited for
    assert trigger.written == [2, 6]
    assert all(name.startswith("image-summary") for name in threads)
    trigger(6, force=True)  # not twice for one step
    assert trigger.written == [2, 6]
