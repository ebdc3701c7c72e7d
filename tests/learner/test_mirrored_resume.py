"""Under MirroredStrategy (2 virtual CPUs) a restart resumes the exact data position.

The learner reads through a plain checkpointable iterator when there are several replicas
(TF 2.13 cannot checkpoint its DistributedIterator). 8 steps straight must equal 3 steps +
restart + 5 steps bit for bit; a control that restores everything but re-opens the data stream
must differ, so the check is sensitive to the data position at all.
"""
import json
import os
import subprocess

import pytest

from tests.fixtures import training as fixtures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result():
    proc = subprocess.run(
        [fixtures.PYTHON, "-m", "tests.learner.mirrored_resume_check"],
        cwd=fixtures.REPO, capture_output=True, text=True, timeout=900,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_resumed_from_the_split_checkpoint(result):
    assert result["replicas"] == 2
    assert result["resumed_from"] == "ckpt-3"
    assert result["steps"] == [8, 8]


def test_resume_equals_uninterrupted(result):
    assert result["max_abs_diff"] <= 1e-7, result


def test_reopened_stream_differs(result):
    assert result["control_max_abs_diff"] > 1e-4, result
