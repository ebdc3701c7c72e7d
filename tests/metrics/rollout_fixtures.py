"""Deterministic test rollouts for the metric tests (no model needed).

`constant_velocity`: every sim agent keeps its current-step velocity and heading.
`noisy_log`: the logged future (held at the last valid state where the log is invalid) plus
Gaussian noise that grows with time -- rollouts near the log, with collisions/off-road cases.
`red_light` (scenario 637f20cafde22ff8): constant velocity, except that in the even rollouts
the evaluated vehicle waiting closest to a red light drives along the light's lane through its
stop point while the light is red (a traffic-light violation); in the odd ones it waits.
All are generated from fixed seeds with numpy, so the checked-in official reference results
stay valid on any machine.
"""
from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf
from waymo_open_dataset.protos import map_pb2
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
RED_LIGHT_SCENARIO = '637f20cafde22ff8'
_CURRENT, _STEPS, _ROLLOUTS = 10, 80, 32
_STOP_STATES = (map_pb2.TrafficSignalLaneState.State.LANE_STATE_STOP,
                map_pb2.TrafficSignalLaneState.State.LANE_STATE_ARROW_STOP)
_RUNNER_SPEED = 6.0  # m/s along the lane


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


def red_light_runner(scenario: scenario_pb2.Scenario) -> tuple[int, int]:
  """(evaluated vehicle, lane) of the vehicle closest to the stop point of a lane whose light
  is red on the first simulated step, stop point ahead of it and lane heading its way."""
  eval_ids = submission_specs.get_evaluation_sim_agent_ids(
      scenario, submission_specs.ChallengeType.SIM_AGENTS)
  tracks = {t.id: t for t in scenario.tracks}
  lanes = {f.id: f.lane for f in scenario.map_features if f.HasField('lane')}
  best = None
  for signal in scenario.dynamic_map_states[_CURRENT + 1].lane_states:
    if signal.state not in _STOP_STATES or signal.lane not in lanes:
      continue
    polyline = lanes[signal.lane].polyline
    lane_dir = np.array([polyline[1].x - polyline[0].x, polyline[1].y - polyline[0].y])
    for object_id in eval_ids:
      track = tracks[object_id]
      now = track.states[_CURRENT]
      if track.object_type != scenario_pb2.Track.ObjectType.TYPE_VEHICLE:
        continue
      to_stop = np.array([signal.stop_point.x - now.center_x, signal.stop_point.y - now.center_y])
      heading = np.array([np.cos(now.heading), np.sin(now.heading)])
      aligned = lane_dir @ heading > 0.9 * np.linalg.norm(lane_dir)
      distance = float(np.linalg.norm(to_stop))
      if aligned and to_stop @ heading > 0 and distance < 10.0 and (
          best is None or distance < best[0]):
        best = (distance, object_id, signal.lane)
  if best is None:
    raise ValueError(f'scenario {scenario.scenario_id}: no evaluated vehicle waits at a red light')
  return best[1], best[2]


def _follow_lane(start: np.ndarray, polyline, speed: float) -> np.ndarray:
  """[80, 2] positions at `speed` along start -> lane points (extended straight at its end)."""
  path = np.concatenate([start[np.newaxis], [[p.x, p.y] for p in polyline]], axis=0)
  path = np.concatenate([path, path[-1:] + 100.0 * (path[-1:] - path[-2:-1]) / np.linalg.norm(
      path[-1] - path[-2])], axis=0)
  arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
  s = speed * np.arange(1, _STEPS + 1) * 0.1
  return np.stack([np.interp(s, arc, path[:, 0]), np.interp(s, arc, path[:, 1])], axis=-1)


def make_red_light_rollouts(scenario: scenario_pb2.Scenario) -> sim_agents_submission_pb2.ScenarioRollouts:
  """Constant velocity; in even rollouts `red_light_runner` drives through its red light."""
  rollouts = make_rollouts(scenario, 'constant_velocity')
  runner, lane_id = red_light_runner(scenario)
  lane = next(f.lane for f in scenario.map_features if f.id == lane_id)
  now = next(t for t in scenario.tracks if t.id == runner).states[_CURRENT]
  xy = _follow_lane(np.array([now.center_x, now.center_y]), lane.polyline, _RUNNER_SPEED)
  step = np.diff(np.concatenate([[[now.center_x, now.center_y]], xy], axis=0), axis=0)
  heading = np.arctan2(step[:, 1], step[:, 0])
  for scene in rollouts.joint_scenes[::2]:
    traj = next(t for t in scene.simulated_trajectories if t.object_id == runner)
    traj.center_x[:] = xy[:, 0]
    traj.center_y[:] = xy[:, 1]
    traj.heading[:] = heading
  return rollouts


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
    if scenario_id == RED_LIGHT_SCENARIO:
      out.append((f'{scenario_id}/red_light', scenario, make_red_light_rollouts(scenario)))
  return out
