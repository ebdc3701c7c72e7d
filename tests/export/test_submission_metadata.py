"""`export.submission_metadata`: the challenge's rules on the submission metadata."""

import pytest
from absl import app
from waymo_open_dataset.protos import sim_agents_submission_pb2

from export import submission_metadata
from tests.export.test_wosac_submission import METADATA


def test_metadata_rules():
    # The flag values behind the submission tests' METADATA, plus a blank author to drop.
    values = {k: v for k, v in METADATA.items() if k != "unique_method_name"}
    values.update(method_name=METADATA["unique_method_name"], authors=["Ada", " ", "Grace"])
    metadata = submission_metadata.submission_metadata(values)
    assert metadata == METADATA
    # Every key is a real field of the proto in this wheel version.
    sim_agents_submission_pb2.SimAgentsChallengeSubmission(**metadata)
    with pytest.raises(app.UsageError, match="public_model_names"):
        submission_metadata.submission_metadata(dict(values, uses_public_model_pretraining=True))
    with pytest.raises(app.UsageError, match="--description must not be empty"):
        submission_metadata.submission_metadata(dict(values, description="  "))
    with pytest.raises(app.UsageError, match="at least one author"):
        submission_metadata.submission_metadata(dict(values, authors=[""]))
