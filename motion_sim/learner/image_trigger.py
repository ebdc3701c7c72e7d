"""TensorBoard pictures of the current policy's rollouts every N steps, off the training path.

Every `interval` steps the trigger samples a few joint rollouts of one fixed scene (the first
scene of the training data) with its own small compiled `Sampler` -- a forward pass of one
scene, cheap next to N training steps -- copies them to numpy, and hands the numpy arrays to a
background thread that finds collisions / off-road steps, draws the Fig.-5-style figure
(matplotlib Agg, no pyplot state) and writes it as an image summary `rollouts/<scenario id>`.
Training continues while the picture is drawn; if the previous picture is still being drawn
when the next one is due, that one is skipped (counted), so rendering can never queue up
behind a fast training loop. At the end of training (forced call) the trigger draws once more
and waits for it.

Enable with gin: `make_image_triggers.interval = 1000` (0 = off).
"""

from __future__ import annotations

import concurrent.futures

import numpy as np
import tensorflow as tf
from absl import logging

import gin
from motion_sim import sampler as sampler_lib
from motion_sim.data import pipeline
from motion_sim.learner.triggers import IntervalTrigger
from motion_sim.viz import figure as figure_lib
from motion_sim.viz import rollout_events, rollout_view

SUMMARY_PREFIX = "rollouts"


class ImageSummaryTrigger(IntervalTrigger):
    """Every `interval` steps, an image summary of the policy's rollouts on one scene.

    Args:
      interval: steps between pictures (<= 0: only the final, forced one).
      writer: the learner's summary writer (chief only).
      model: the training `SimAgentModel` (read only).
      tokenizer: the run's `ActionTokenizer`.
      scene: one scene, batched dict of numpy `Scene` fields with B = 1.
      num_rollouts: joint rollouts drawn per picture.
      seed: base seed; the picture at step s samples with (seed, s), so a resumed run draws
        the same picture for the same weights.
      start: the step training starts from.

    Attributes:
      written: steps whose picture was written (filled by the background thread).
      skipped: pictures skipped because the previous one was still being drawn.
    """

    def __init__(
        self,
        interval: int,
        writer,
        model,
        tokenizer,
        scene: dict,
        num_rollouts: int = 4,
        seed: int = 0,
        start: int = 0,
    ):
        super().__init__(interval, self._sample, start=start)
        self.writer = writer
        self.scene = scene
        self.seed = int(seed)
        self._sampler = sampler_lib.Sampler(model, tokenizer, num_rollouts=num_rollouts)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="image-summary"
        )
        self._pending: concurrent.futures.Future | None = None
        self.written: list[int] = []
        self.skipped = 0
        self._sampled: set[int] = set()

    @property
    def scenario_id(self) -> str:
        value = np.asarray(self.scene["scenario_id"]).reshape(-1)[0]
        return value.decode() if isinstance(value, bytes) else str(value)

    def __call__(self, step: int, force: bool = False):
        super().__call__(step, force)
        if force:
            self.wait()

    def wait(self) -> None:
        """Blocks until the picture being drawn (if any) is written; re-raises its error."""
        if self._pending is not None:
            self._pending.result()

    def _sample(self, step: int) -> None:
        if step in self._sampled:  # forced at the end right after a periodic picture
            return
        if self._pending is not None and not self._pending.done():
            self.skipped += 1
            logging.info("step %d: previous rollout picture still drawing, skipped", step)
            return
        # The only work on the training thread: one compiled rollout of one scene.
        rollout = self._sampler(self.scene, tf.constant([self.seed, step], tf.int32))
        xy, heading = rollout.xy.numpy()[0], rollout.heading.numpy()[0]
        self._sampled.add(step)
        self._pending = self._executor.submit(self._draw, int(step), xy, heading)
        self._pending.add_done_callback(_log_failure)

    def _draw(self, step: int, xy: np.ndarray, heading: np.ndarray) -> None:
        scene = {k: np.asarray(v)[0] for k, v in self.scene.items()}
        view = rollout_view.make_view(scene, xy, heading)
        events = rollout_events.find_events(view)
        fig = figure_lib.render_figure(
            view,
            events,
            size_inches=(10.0, 5.2),
            dpi=80,
            title=f"step {step}: scenario {view.scenario_id}, {int(view.rollout_mask.sum())} agents",
        )
        image = figure_lib.figure_to_rgb(fig)
        with self.writer.as_default(step=step):
            tf.summary.image(f"{SUMMARY_PREFIX}/{view.scenario_id}", image[None], step=step)
        self.writer.flush()
        self.written.append(step)


def _log_failure(future: concurrent.futures.Future) -> None:
    if future.exception() is not None:
        logging.error("rollout picture failed: %r", future.exception())


def first_scene(data: str) -> dict:
    """The first scene of `data` (scene-shard glob) as a batched numpy dict, B = 1."""
    batch = next(iter(pipeline.make_dataset(data, 1, shuffle=False, repeat=False)))
    return {k: v.numpy() for k, v in batch.items()}


@gin.configurable(denylist=["writer", "model", "tokenizer", "data", "start", "is_chief", "seed"])
def make_image_triggers(
    writer,
    model,
    tokenizer,
    data: str,
    *,
    start: int = 0,
    is_chief: bool = True,
    interval: int = 0,
    num_rollouts: int = 4,
    seed: int = 0,
) -> list[ImageSummaryTrigger]:
    """The learner's image triggers from gin (`make_image_triggers.interval = 1000`).

    interval = 0 (default) draws nothing; only the chief draws (it owns the summaries).
    `data` is the training data glob; its first scene is the one drawn. `seed`: the run's.
    """
    if interval <= 0 or not is_chief:
        return []
    return [
        ImageSummaryTrigger(
            interval,
            writer,
            model,
            tokenizer,
            first_scene(data),
            num_rollouts=num_rollouts,
            seed=seed,
            start=start,
        )
    ]
