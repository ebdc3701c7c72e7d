"""Rollout figures of scored scenes as PNG files and TensorBoard image summaries (one dir)."""

from __future__ import annotations

import os

import tensorflow as tf

from motion_sim.data import scenario_reader, scene_builder
from motion_sim.viz import figure, rollout_events, rollout_view


def write_rollout_images(pairs, images_dir: str) -> list[str]:
    """Draws each (source, Scenario proto, ScenarioRollouts proto) of `pairs`.

    Writes `images_dir/<scenario id>.png` and an image summary `rollouts/<scenario id>` (step =
    position in `pairs`) to a TensorBoard event file in `images_dir`; returns the PNG paths.
    """
    os.makedirs(images_dir, exist_ok=True)
    writer = tf.summary.create_file_writer(images_dir)
    written = []
    for step, (source, scenario, rollouts) in enumerate(pairs):
        scene, _ = scene_builder.build_scene(scenario_reader.read_scenario_proto(scenario, source))
        view = rollout_view.view_from_scenario_rollouts(scene, rollouts)
        fig = figure.render_figure(view, rollout_events.find_events(view))
        written.append(figure.save_figure(fig, os.path.join(images_dir, f"{view.scenario_id}.png")))
        with writer.as_default(step=step):
            tf.summary.image(f"rollouts/{view.scenario_id}", figure.figure_to_rgb(fig)[None])
    writer.flush()
    return written
