"""`export.submission_metadata`: the challenge's rules on the submission metadata."""

import pytest
from absl import app
from waymo_open_dataset.protos import sim_agents_submission_pb2

from export import submission_metadata


def test_metadata_rules():
    values = {
        "account_name": "a@b.c",
        "method_name": "m",
        "authors": ["A", " "],
        "affiliation": "x",
        "description": "d",
        "method_link": "l",
        "num_model_parameters": "1M",
        "uses_lidar_data": False,
        "uses_camera_data": False,
        "uses_public_model_pretraining": False,
        "public_model_names": [],
        "acknowledge_complies_with_closed_loop_requirement": True,
    }
    metadata = submission_metadata.submission_metadata(values)
    assert metadata["authors"] == ["A"] and metadata["unique_method_name"] == "m"
    # Every key is a real field of the proto in this wheel version.
    sim_agents_submission_pb2.SimAgentsChallengeSubmission(**metadata)
    with pytest.raises(app.UsageError, match="public_model_names"):
        submission_metadata.submission_metadata(dict(values, uses_public_model_pretraining=True))
    with pytest.raises(app.UsageError, match="--description must not be empty"):
        submission_metadata.submission_metadata(dict(values, description="  "))
    with pytest.raises(app.UsageError, match="at least one author"):
        submission_metadata.submission_metadata(dict(values, authors=[""]))
