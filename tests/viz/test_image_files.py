"""Rollout figures of scored scenes: PNGs + a TensorBoard event file with the image summaries."""

from __future__ import annotations

import glob
import os

import tensorflow as tf
from PIL import Image
from tensorflow.core.util import event_pb2

from export.export_baseline import baseline_rollouts
from motion_sim.viz import image_files
from tests.fixtures.scenarios import read_scenarios


def test_pngs_and_image_summaries(tmp_path):
    pairs = [
        (source, scenario, baseline_rollouts("constant_velocity", scenario, num_rollouts=32))
        for source, scenario in read_scenarios()
    ]
    paths = image_files.write_rollout_images(pairs, str(tmp_path / "img"))
    ids = [s.scenario_id for _, s in read_scenarios()]
    assert paths == [str(tmp_path / "img" / f"{i}.png") for i in ids]
    assert all(Image.open(p).size == (1200, 620) for p in paths)
    (events,) = glob.glob(os.path.join(tmp_path, "img", "events.out.tfevents.*"))
    tags = [
        (v.tag, e.step)
        for r in tf.data.TFRecordDataset(events)
        for e in [event_pb2.Event.FromString(r.numpy())]
        for v in e.summary.value
        if v.metadata.plugin_data.plugin_name == "images"
    ]
    assert tags == [(f"rollouts/{i}", step) for step, i in enumerate(ids)]
