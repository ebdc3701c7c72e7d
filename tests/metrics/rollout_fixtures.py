"""Deterministic test rollouts for the metric tests (no model needed).

`constant_velocity`: every sim agent keeps its current-step velocity and heading.
`noisy_log`: the logged future (held at the last valid state where the log is invalid) plus
Gaussian noise that grows with time -- rollouts near the log, with collisions/off-road cases.
Both are generated from fixed seeds with numpy, so the checked-in official reference results
stay valid on any machine.
"""
from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf
from waymo_open_dataset.protos import scenario_pb2
from waymo_open_dataset.protos import sim_agents_submission_pb2
from waymo_open_dataset.utils.sim_agents import submission_specs

TESTDATA = pathlib.Path(__file__).resolve().parents[1] / 'testdata' / 'metrics'
SCENARIO_FILES = {
    '637f20cafde22ff8': TESTDATA / 'motion_data_one_scenario.tfrecord',
    'ee519cf571686d19': TESTDATA / 'womd_scenario_input.tfrecord',
}
TEST_SUBMISSION = TESTDATA / 'test_submission.binproto'
KINDS = ('constant_velocity', 'noisy_log')
_CURRENT, _STEPS, _ROLLOUTS = 10, 80, 32


def load_scenario(path) -> scenario_pb2.Scenario:
  record = next(iter(tf.data.TFRecordDataset(str(path))))
  return scenario_pb2.Scenario.FromString(record.numpy())


def make_rollouts(scenario: scenario_pb2.Scenario, kind: str,
                  seed: int = 0) -> sim_agents_submission_pb2.ScenarioRollouts:
  """32 joint scenes of `kind` for every sim agent of `scenario`."""
  rng = np.random.default_rng(seed)
  ids = submission_specs.get_sim_agent_ids(scenario, submission_specs.ChallengeType.SIM_AGENTS)
  tracks = {t.id: t for t in scenario.tracks}
  t = np.arange(1, _STEPS + 1, dtype=np.float64) * 0.1
  scenes = [sim_agents_submission_pb2.JointScene() for _ in range(_ROLLOUTS)]
  for object_id in ids:
    states = tracks[object_id].states
    now = states[_CURRENT]
    if kind == 'constant_velocity':
      base = np.stack([now.center_x + now.velocity_x * t, now.center_y + now.velocity_y * t,
                       np.full_like(t, now.center_z), np.full_like(t, now.heading)], axis=-1)
      noise_scale = np.zeros(4)
    elif kind == 'noisy_log':
      rows, last = [], now
      for s in states[_CURRENT + 1:]:
        last = s if s.valid else last
        rows.append((last.center_x, last.center_y, last.center_z, last.heading))
      base = np.array(rows, np.float64)
      noise_scale = np.array([0.08, 0.08, 0.01, 0.01])
    else:
      raise ValueError(f'unknown rollout kind {kind!r}')
    for scene in scenes:
      # Random-walk noise: std grows like sqrt(step), as model drift does.
      noise = np.cumsum(rng.normal(size=(_STEPS, 4)) * noise_scale, axis=0)
      traj = base + noise
      scene.simulated_trajectories.add(
          object_id=object_id, center_x=traj[:, 0], center_y=traj[:, 1], center_z=traj[:, 2],
          heading=traj[:, 3])
  return sim_agents_submission_pb2.ScenarioRollouts(scenario_id=scenario.scenario_id,
                                                     joint_scenes=scenes)


def test_submission_rollouts() -> sim_agents_submission_pb2.ScenarioRollouts:
  sub = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(
      TEST_SUBMISSION.read_bytes())
  return sub.scenario_rollouts[0]


def cases():
  """(case name, scenario, rollouts) for every reference case."""
  out = [('test_submission', load_scenario(SCENARIO_FILES['637f20cafde22ff8']),
          test_submission_rollouts())]
  for scenario_id, path in SCENARIO_FILES.items():
    scenario = load_scenario(path)
    for seed, kind in enumerate(KINDS):
      out.append((f'{scenario_id}/{kind}', scenario, make_rollouts(scenario, kind, seed)))
  return out
