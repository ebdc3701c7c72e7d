"""Under MirroredStrategy (2 virtual CPUs) a restart resumes the exact data position.

The learner reads through a plain checkpointable iterator when there are several replicas
(TF 2.13 cannot checkpoint its DistributedIterator). 8 steps straight must equal 3 steps +
restart + 5 steps bit for bit; a control that restores everything but re-opens the data stream
must differ, so the check is sensitive to the data position at all.
"""

import pytest

from tests.fixtures import training as fixtures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result():
    return fixtures.run_check("tests.learner.mirrored_resume_check", timeout=900)


def test_resumed_from_the_split_checkpoint(result):
    assert result["replicas"] == 2
    assert result["resumed_from"] == "ckpt-3"
    assert result["steps"] == [8, 8]


def test_resume_equals_uninterrupted(result):
    assert result["max_abs_diff"] <= 1e-7, result


def test_reopened_stream_differs(result):
    assert result["control_max_abs_diff"] > 1e-4, result
