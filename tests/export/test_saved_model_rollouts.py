"""`generate_scenario_rollouts`: SavedModel -> validated world-frame WOSAC rollouts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from waymo_open_dataset.utils.sim_agents import submission_specs

from export import saved_model_rollouts
from motion_sim.data import datatypes

CHALLENGE = submission_specs.ChallengeType.SIM_AGENTS


def _array(rollouts):
    """[R, N, 80, 4] (x, y, z, heading) and the object ids of the first joint scene."""
    ids = [t.object_id for t in rollouts.joint_scenes[0].simulated_trajectories]
    out = np.array(
        [
            [[t.center_x, t.center_y, t.center_z, t.heading] for t in js.simulated_trajectories]
            for js in rollouts.joint_scenes
        ]
    )
    return out.transpose(0, 1, 3, 2), ids


def _cv_expected(scenario, object_id):
    state = next(t for t in scenario.tracks if t.id == object_id).states[datatypes.CURRENT_INDEX]
    t = np.arange(1, 81) * 0.1
    return np.stack(
        [
            state.center_x + state.velocity_x * t,
            state.center_y + state.velocity_y * t,
            np.full(80, state.center_z),
            np.full(80, state.heading),
        ],
        axis=-1,
    )


def _assert_close(actual, expected):
    expected = np.broadcast_to(expected, actual.shape)
    np.testing.assert_allclose(actual[..., :3], expected[..., :3], atol=5e-3, rtol=0)
    dh = (actual[..., 3] - expected[..., 3] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dh, 0.0, atol=1e-4)


def test_cv_model_covers_every_sim_agent_in_world_frame(scenarios, cv_saved_model):
    for source, scenario in scenarios:
        rollouts, stats = saved_model_rollouts.generate_scenario_rollouts_with_stats(
            cv_saved_model, scenario, seed=0, source=source
        )
        submission_specs.validate_scenario_rollouts(rollouts, scenario, CHALLENGE)
        traj, ids = _array(rollouts)
        sim_ids = list(submission_specs.get_sim_agent_ids(scenario, CHALLENGE))
        assert ids == sim_ids and stats.num_fallback_agents == 0
        assert stats.num_model_agents == stats.num_sim_agents == len(sim_ids)
        for n, object_id in enumerate(ids):
            # Scene frame and back through the exported graph: mm-level agreement.
            _assert_close(traj[:, n], _cv_expected(scenario, object_id))


def test_model_is_loaded_once(cv_saved_model, scenarios):
    first = saved_model_rollouts.load_cached(cv_saved_model)
    saved_model_rollouts.generate_scenario_rollouts(cv_saved_model, scenarios[0][1], 0)
    assert saved_model_rollouts.load_cached(cv_saved_model) is first


def test_random_model_is_seeded_per_scenario(random_saved_model, scenarios):
    scenario = scenarios[0][1]
    a, _ = _array(saved_model_rollouts.generate_scenario_rollouts(random_saved_model, scenario, 3))
    b, _ = _array(saved_model_rollouts.generate_scenario_rollouts(random_saved_model, scenario, 3))
    c, _ = _array(saved_model_rollouts.generate_scenario_rollouts(random_saved_model, scenario, 4))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.5
    # The 32 rollouts of one call are different samples, not copies.
    assert np.abs(a[0] - a[1]).max() > 0.5


def _crowded(scenario, extra: int):
    """The scenario plus `extra` copies of its valid tracks (new ids, shifted 400 m away)."""
    crowded = copy.deepcopy(scenario)
    valid = [t for t in scenario.tracks if t.states[datatypes.CURRENT_INDEX].valid]
    next_id = max(t.id for t in scenario.tracks) + 1
    for k in range(extra):
        track = crowded.tracks.add()
        track.CopyFrom(valid[k % len(valid)])
        track.id = next_id + k
        for state in track.states:
            state.center_x += 400.0 + 10.0 * k
    return crowded


def test_agents_beyond_max_agents_get_constant_velocity_fallback(cv_saved_model, scenarios):
    source, scenario = scenarios[1]
    crowded = _crowded(scenario, extra=60)
    sim_ids = list(submission_specs.get_sim_agent_ids(crowded, CHALLENGE))
    assert len(sim_ids) > datatypes.MAX_AGENTS
    rollouts, stats = saved_model_rollouts.generate_scenario_rollouts_with_stats(
        cv_saved_model, crowded, seed=0, source=source
    )
    submission_specs.validate_scenario_rollouts(rollouts, crowded, CHALLENGE)
    assert stats.num_model_agents == datatypes.MAX_AGENTS
    assert stats.num_fallback_agents == len(sim_ids) - datatypes.MAX_AGENTS
    traj, ids = _array(rollouts)
    assert ids == sim_ids
    for n, object_id in enumerate(ids):
        _assert_close(traj[:, n], _cv_expected(crowded, object_id))
    assert np.all(traj[..., 3] >= -np.pi) and np.all(traj[..., 3] < np.pi)


def test_model_output_for_a_non_sim_agent_is_refused(scenarios):
    from export import scenario_rollouts

    source, scenario = scenarios[0]
    sim_ids = list(submission_specs.get_sim_agent_ids(scenario, CHALLENGE))
    invalid_now = next(t.id for t in scenario.tracks if not t.states[datatypes.CURRENT_INDEX].valid)
    ids = np.array(sim_ids[:3] + [invalid_now], np.int64)
    traj = np.zeros((32, len(ids), 80, 4), np.float32)
    with pytest.raises(ValueError, match=f"{source}.*object {invalid_now}.*not a sim agent"):
        scenario_rollouts.to_scenario_rollouts(scenario, traj, ids, np.ones(len(ids), bool), source)
    traj[0, 0, 5, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        scenario_rollouts.to_scenario_rollouts(
            scenario, traj[:, :3], ids[:3], np.ones(3, bool), source
        )
