"""Runs a sim-agent SavedModel on one Scenario and returns validated WOSAC rollouts.

`generate_scenario_rollouts` is the single entry point shared by the submission generator and
`motion_sim/evaluate.py --saved_model`; baselines run in process through the same conversion
(`generate_rollouts_in_process`), so tests of one cover the other.
"""

from __future__ import annotations

import functools
import os
import zlib
from typing import Protocol

import numpy as np
import tensorflow as tf
from waymo_open_dataset.protos import scenario_pb2, sim_agents_submission_pb2

from export import loader, scenario_rollouts, scene_input, signature


class SimAgentRunner(Protocol):
    """`LoadedSimAgent` (SavedModel) or `SimAgentServing` (in process)."""

    def run(self, inputs: dict, seed) -> dict[str, np.ndarray]: ...


def scenario_seed(seed: int, scenario_id: str) -> np.ndarray:
    """int64 [2] stateless seed: the run's seed and a stable hash of the scenario id.

    Each scenario gets independent randomness that does not depend on its position in the
    file list, so a resumed or re-sharded run reproduces the same rollouts.
    """
    return np.array([int(seed), zlib.crc32(scenario_id.encode("utf-8"))], np.int64)


@functools.lru_cache(maxsize=4)
def _load(export_dir: str, _stamp: float) -> loader.LoadedSimAgent:
    return loader.load_sim_agent(export_dir)


def load_cached(saved_model_dir: str) -> loader.LoadedSimAgent:
    """Loads once per directory; a re-export (new saved_model.pb mtime) is loaded afresh."""
    export_dir = os.path.abspath(saved_model_dir)
    pb = os.path.join(export_dir, "saved_model.pb")
    stamp = os.path.getmtime(pb) if os.path.exists(pb) else 0.0
    return _load(export_dir, stamp)


def rollouts_from_runner(
    runner: SimAgentRunner,
    scenario: scenario_pb2.Scenario,
    seed: int,
    source: str = "",
) -> tuple[sim_agents_submission_pb2.ScenarioRollouts, scenario_rollouts.RolloutStats]:
    """Scene inputs -> runner -> world-frame `ScenarioRollouts` (+ CV fallback), validated."""
    inputs = scene_input.stack_scenes([scene_input.scene_from_scenario(scenario, source)])
    outputs = runner.run(inputs, scenario_seed(seed, scenario.scenario_id))
    return scenario_rollouts.to_scenario_rollouts(
        scenario,
        outputs["trajectories"][0],
        outputs["object_ids"][0],
        outputs["agent_mask"][0],
        source,
    )


def generate_scenario_rollouts_with_stats(
    saved_model_dir: str, scenario: scenario_pb2.Scenario, seed: int, source: str = ""
):
    """`generate_scenario_rollouts` plus its `RolloutStats` (fallback counts)."""
    return rollouts_from_runner(load_cached(saved_model_dir), scenario, seed, source)


def generate_scenario_rollouts(
    saved_model_dir: str, scenario: scenario_pb2.Scenario, seed: int
) -> sim_agents_submission_pb2.ScenarioRollouts:
    """Validated world-frame rollouts of every sim agent of `scenario` by a SavedModel.

    Loads (and caches) the model at `saved_model_dir`, builds its scene inputs, runs it with a
    per-scenario seed derived from `seed`, fills agents the model did not hold with the
    constant-velocity fallback and checks the result with
    `submission_specs.validate_scenario_rollouts`.
    """
    rollouts, _ = generate_scenario_rollouts_with_stats(saved_model_dir, scenario, seed)
    return rollouts


def generate_rollouts_in_process(
    agent: tf.Module,
    scenario: scenario_pb2.Scenario,
    seed: int,
    num_rollouts: int = 32,
) -> sim_agents_submission_pb2.ScenarioRollouts:
    """Same path as `generate_scenario_rollouts` without the SavedModel round trip."""
    rollouts, _ = rollouts_from_runner(
        signature.SimAgentServing(agent, num_rollouts), scenario, seed
    )
    return rollouts
