r"""Exports a baseline sim agent as a SavedModel with the serving contract.

    python -m export.export_baseline --kind=constant_velocity|random|logged_oracle \
      --output_dir=DIR [--num_rollouts=32]

The result goes through exactly the submission / evaluation path of a trained model:
`python -m export.wosac_submission --saved_model=DIR ...`.
"""

from __future__ import annotations

import enum

import tensorflow as tf
from absl import app, flags
from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2

from export import saved_model_rollouts, signature
from motion_sim.agents.constant_velocity import ConstantVelocityAgent
from motion_sim.agents.logged_oracle import LoggedOracleAgent
from motion_sim.agents.random_agent import RandomAgent


class BaselineKind(enum.StrEnum):
    """The baseline sim agents (`--kind`, `export.report --baselines`)."""

    CONSTANT_VELOCITY = "constant_velocity"
    RANDOM = "random"
    LOGGED_ORACLE = "logged_oracle"


BASELINES = {
    BaselineKind.CONSTANT_VELOCITY: ConstantVelocityAgent,
    BaselineKind.RANDOM: RandomAgent,
    BaselineKind.LOGGED_ORACLE: LoggedOracleAgent,
}


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_enum("kind", None, [k.value for k in BaselineKind], "Which baseline to export.")
    flags.DEFINE_string("output_dir", None, "SavedModel directory to write.")
    flags.DEFINE_integer("num_rollouts", 32, "Rollouts per scenario (WOSAC: 32).")
    flags.mark_flags_as_required(["kind", "output_dir"])


def make_baseline(kind: str) -> tf.Module:
    """A new agent of `kind` (a `BaselineKind` or its value)."""
    try:
        return BASELINES[BaselineKind(kind)]()
    except ValueError:
        raise ValueError(
            f"unknown baseline {kind!r}; choose from {[k.value for k in BaselineKind]}"
        ) from None


def baseline_rollouts(
    kind: str, scenario: scenario_pb2.Scenario, num_rollouts: int = 32, seed: int = 0
) -> sim_agents_submission_pb2.ScenarioRollouts:
    """Validated world-frame `ScenarioRollouts` of baseline `kind` for `scenario`, run in
    process through the same conversion as an exported SavedModel (for tests and metrics)."""
    return saved_model_rollouts.generate_rollouts_in_process(
        make_baseline(kind), scenario, seed, num_rollouts
    )


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    path = signature.export_sim_agent(
        make_baseline(FLAGS.kind), FLAGS.output_dir, FLAGS.num_rollouts
    )
    print(path)


if __name__ == "__main__":
    define_flags()
    app.run(main)
