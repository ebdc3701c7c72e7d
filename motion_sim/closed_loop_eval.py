r"""Closed-loop quality of a policy checkpoint: collision rate and ADE of sampled rollouts.

    python -m motion_sim.closed_loop_eval --checkpoint=runs/demo/finetune \
        --gin_file=gin/demo_finetune.gin --data='runs/demo/data/*/*.tfrecord.gz' --num_rollouts=32

The learning check of RL fine-tuning (docs/learning.md); the rates are defined in
`motion_sim/rl/rollout_eval.py`. Prints one JSON line.
"""

from __future__ import annotations

import json

import tensorflow as tf
from absl import app, flags

from motion_sim import sampler, tokenizer  # noqa: F401 -- registers their configurables
from motion_sim.learner import checkpointing
from motion_sim.learner.gin_config import define_gin_flags, parse_gin
from motion_sim.models.sim_agent_model import SimAgentModel
from motion_sim.rl import rollout_eval

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    define_gin_flags()  # the run's gin files: model size and tokenizer
    flags.DEFINE_string("checkpoint", None, "Checkpoint prefix, checkpoint dir or run dir.")
    flags.DEFINE_string("data", None, "Glob of scene shards.")
    flags.DEFINE_integer("num_rollouts", 32, "Rollouts per scene.")
    flags.DEFINE_integer("seed", 0, "Sampling seed.")
    flags.mark_flags_as_required(["checkpoint", "data"])


def load_policy(checkpoint: str) -> SimAgentModel:
    """SimAgentModel (from the parsed gin config) with the checkpoint's weights."""
    model = SimAgentModel()
    path = checkpointing.resolve_checkpoint(checkpoint)
    tf.train.Checkpoint(model=model).read(path).expect_partial().assert_existing_objects_matched()
    return model


def main(argv):
    del argv
    parse_gin(FLAGS.gin_file, list(FLAGS.gin_bindings))
    model = load_policy(FLAGS.checkpoint)
    print(
        json.dumps(rollout_eval.evaluate(model, FLAGS.data, FLAGS.num_rollouts, FLAGS.seed)),
        flush=True,
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
