"""Closed-loop episodes on the bundled real scenes: more candidates do not hurt under the log."""

import numpy as np
import pytest

from motion_sim import policy_eval
from motion_sim.planning import candidates, episode, worlds
from motion_sim.planning.planner import RandomShootingPlanner
from tests.fixtures import GPUDRIVE_FILE, SCENARIO_FILES


@pytest.mark.slow  # 8 planners in log playback on 3 real scenes (~1-2 min on the shared box)
def test_more_candidates_are_not_worse_under_log_playback():
    planners = candidates.planner_set(num_candidates=(9, 81))
    planner = RandomShootingPlanner()
    returns = []
    for raw, source, _reason in policy_eval.read_scenarios(
        ",".join(SCENARIO_FILES + (GPUDRIVE_FILE,))
    ):
        assert raw is not None, source
        ctx = policy_eval.scene_context(raw)
        res = episode.run_episode(ctx, worlds.LogWorld(), planner, planners, 1, None)
        assert res.returns.shape == (len(planners.names), 1)
        returns.append(res.returns[:, 0].reshape(2, 4))  # [J, D]
    returns = np.array(returns)  # [scenes, J, D]
    small, large = returns[:, 0].mean(), returns[:, 1].mean()
    print(
        f"mean log-playback return: J=9 {small:.3f}, J=81 {large:.3f} "
        f"(per scene {returns.mean(-1).round(3).tolist()})"
    )
    assert large >= small
