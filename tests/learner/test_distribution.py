"""MirroredStrategy on 2 virtual CPUs makes the same update as one device (BC and RL steps).

Both losses divide local sums by the *global* count and the return normalisation all-reduces its
statistics, so splitting a batch of 2 scenes over 2 replicas must not change the update. The
scenes differ in agent count (50 vs 84), so a per-replica mean would change it visibly.
"""

import pytest

from tests.fixtures import training as fixtures


@pytest.fixture(scope="module")
def result():
    return fixtures.run_check("tests.learner.distribution_check", timeout=600)


def test_two_replicas(result):
    assert result["replicas"] == 2


@pytest.mark.parametrize("mode", ["bc", "rl"])
def test_same_update_as_single_device(result, mode):
    r = result[mode]
    assert r["max_abs_update"] > 1e-3, r  # the step really moved the weights
    assert r["max_abs_diff"] <= 1e-5, r
    assert abs(r["loss_single"] - r["loss_multi"]) <= 1e-5 * max(1.0, abs(r["loss_single"])), r


def test_return_statistics_all_reduced(result):
    # Replica values {1, 2} and {3, (10 masked)} -> global mean 2, std sqrt(2/3), count 3 on both.
    for mean, std, count in result["stats"]:
        assert mean == pytest.approx(2.0)
        assert std == pytest.approx((2.0 / 3.0) ** 0.5, rel=1e-5)
        assert count == 3.0
