r"""Exports a baseline sim agent as a SavedModel with the serving contract.

    python -m export.export_baseline --kind=constant_velocity|random|logged_oracle \
      --output_dir=DIR [--num_rollouts=32]

The result goes through exactly the submission / evaluation path of a trained model:
`python -m export.wosac_submission --saved_model=DIR ...`.
"""
from __future__ import annotations

import tensorflow as tf
from absl import app
from absl import flags

from export import signature
from motion_sim.agents.constant_velocity import ConstantVelocityAgent
from motion_sim.agents.logged_oracle import LoggedOracleAgent
from motion_sim.agents.random_agent import RandomAgent

BASELINES = {
    "constant_velocity": ConstantVelocityAgent,
    "random": RandomAgent,
    "logged_oracle": LoggedOracleAgent,
}

_KIND = flags.DEFINE_enum("kind", None, sorted(BASELINES), "Which baseline to export.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "SavedModel directory to write.")
_NUM_ROLLOUTS = flags.DEFINE_integer("num_rollouts", 32, "Rollouts per scenario (WOSAC: 32).")


def make_baseline(kind: str) -> tf.Module:
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; choose from {sorted(BASELINES)}")
    return BASELINES[kind]()


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    path = signature.export_sim_agent(make_baseline(_KIND.value), _OUTPUT_DIR.value,
                                      _NUM_ROLLOUTS.value)
    print(path)


if __name__ == "__main__":
    flags.mark_flags_as_required(["kind", "output_dir"])
    app.run(main)
