"""Reading submissions: proto type detection, shard globs, .tar.gz archives, bad files."""

import tarfile

import pytest
from waymo_open_dataset.protos import sim_agents_submission_pb2

from motion_sim.metrics import rollout_checks, rollouts_io
from tests.fixtures import rollouts as rollout_fixtures


@pytest.fixture(scope="module")
def two_scenarios():
    out = []
    for path in rollout_fixtures.SCENARIO_FILES.values():
        scenario = rollout_fixtures.load_scenario(path)
        out.append(rollout_fixtures.make_rollouts(scenario, "constant_velocity"))
    return out


def _submission(rollouts):
    return sim_agents_submission_pb2.SimAgentsChallengeSubmission(
        scenario_rollouts=rollouts,
        unique_method_name="test",
        submission_type=sim_agents_submission_pb2.SimAgentsChallengeSubmission.SIM_AGENTS_SUBMISSION,
    )


def test_detects_submission_and_scenario_rollouts(two_scenarios, tmp_path):
    single = tmp_path / "one.binproto"
    single.write_bytes(two_scenarios[0].SerializeToString())
    sub = tmp_path / "sub.binproto"
    sub.write_bytes(_submission(two_scenarios).SerializeToString())
    got_single = [r for _, r in rollouts_io.read_rollouts(str(single))]
    got_sub = [r for _, r in rollouts_io.read_rollouts(str(sub))]
    assert got_single == [two_scenarios[0]]
    assert got_sub == two_scenarios


def test_shard_glob_and_tar_archive(two_scenarios, tmp_path):
    names = []
    for i, rollouts in enumerate(two_scenarios):
        shard = tmp_path / f"submission.binproto-{i:05d}-of-00002"
        shard.write_bytes(_submission([rollouts]).SerializeToString())
        names.append(shard)
    ids = [
        r.scenario_id for _, r in rollouts_io.read_rollouts(str(tmp_path / "submission.binproto-*"))
    ]
    assert ids == [r.scenario_id for r in two_scenarios]
    archive = tmp_path / "submission.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for shard in names:
            tar.add(shard, arcname=shard.name)
    got = list(rollouts_io.read_rollouts(str(archive)))
    assert [r for _, r in got] == two_scenarios
    assert got[0][0].endswith("submission.tar.gz:submission.binproto-00000-of-00002")


def test_bad_files_name_the_file(tmp_path):
    junk = tmp_path / "junk.binproto"
    junk.write_bytes(b"\x07not a proto at all")
    with pytest.raises(rollout_checks.RolloutError, match="junk.binproto.*not a SimAgents"):
        list(rollouts_io.read_rollouts(str(junk)))
    with pytest.raises(rollout_checks.RolloutError, match="no file matches"):
        list(rollouts_io.read_rollouts(str(tmp_path / "nothing-*")))
