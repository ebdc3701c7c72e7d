"""Run as `python -m tests.learner.mirrored_resume_check` by test_mirrored_resume.py:
MirroredStrategy on 2 virtual CPUs, BC for 8 steps uninterrupted vs 3 steps, a new Learner in
the same run directory, 5 more.
Prints the max abs weight difference, and that of a control run that resumes weights and
optimizer but re-opens the data stream (which must differ, or the check proves nothing).

A separate process because virtual devices must be configured before TensorFlow initialises.
"""

import json
import os
import tempfile

import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

from motion_sim import tokenizer as tokenizer_lib  # noqa: E402
from motion_sim.data import pipeline  # noqa: E402
from motion_sim.learner.learner import Learner  # noqa: E402
from motion_sim.losses.bc_loss import BCLoss  # noqa: E402
from motion_sim.models.sim_agent_model import SimAgentModel  # noqa: E402
from tests.fixtures import training as fixtures  # noqa: E402

TOTAL, SPLIT = 8, 3  # SPLIT odd: with 4 scenes in global batches of 2 a re-opened stream is off


def make_learner(strategy, root, shards, weights, max_steps):
    with strategy.scope():
        model = SimAgentModel()
        model.set_weights(weights)
        optimizer = tf.keras.optimizers.Adam(1e-3)

    def dataset_fn(ctx):
        return pipeline.make_dataset(shards, 2, shuffle=False, repeat=True, input_context=ctx)

    return Learner(
        root,
        strategy,
        model,
        optimizer,
        BCLoss(tokenizer=tokenizer_lib.ActionTokenizer()),
        dataset_fn,
        max_steps=max_steps,
        steps_per_loop=1,
        checkpoint_interval=SPLIT,
        summary_interval=0,
        log_interval=100,
        grad_clip_norm=None,
    )


def max_diff(a, b):
    return max(float(abs(x - y).max()) for x, y in zip(a, b))


def main():
    tmp = tempfile.mkdtemp()
    shards = fixtures.four_scene_shards(os.path.join(tmp, "scenes"))
    fixtures.parse_tiny_gin()
    tf.keras.utils.set_random_seed(0)
    weights = SimAgentModel().get_weights()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    straight = make_learner(strategy, os.path.join(tmp, "a"), shards, weights, TOTAL)
    straight.run()
    first = make_learner(strategy, os.path.join(tmp, "b"), shards, weights, SPLIT)
    first.run()
    resumed = make_learner(strategy, os.path.join(tmp, "b"), shards, weights, TOTAL)
    resumed_from = resumed.restored_from
    resumed.run()
    # Control: same checkpoint, but the data stream starts over.
    first_c = make_learner(strategy, os.path.join(tmp, "c"), shards, weights, SPLIT)
    first_c.run()
    control = make_learner(strategy, os.path.join(tmp, "c"), shards, weights, TOTAL)
    control.iterator = iter(
        pipeline.make_dataset(
            shards, 2, shuffle=False, repeat=True, input_context=tf.distribute.InputContext(1, 0, 2)
        )
    )
    control.run()
    out = {
        "replicas": strategy.num_replicas_in_sync,
        "resumed_from": os.path.basename(resumed_from or ""),
        "steps": [int(straight.step.numpy()), int(resumed.step.numpy())],
        "max_abs_diff": max_diff(straight.model.get_weights(), resumed.model.get_weights()),
        "control_max_abs_diff": max_diff(straight.model.get_weights(), control.model.get_weights()),
    }
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
