"""Shared fixtures for the export tests: the bundled WOMD Scenario samples and baseline models."""
from __future__ import annotations

import os

import pytest
from waymo_open_dataset.protos import scenario_pb2

from export import signature
from motion_sim.agents.constant_velocity import ConstantVelocityAgent
from motion_sim.agents.random_agent import RandomAgent
from motion_sim.data import tfrecord_io

SAMPLE_DIR = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "motion_sim", "data", "sample"))
SCENARIO_FILES = (
    os.path.join(SAMPLE_DIR, "motion_data_one_scenario.tfrecord"),  # 637f20cafde22ff8, 50 agents
    os.path.join(SAMPLE_DIR, "womd_scenario_input.tfrecord"),  # ee519cf571686d19, 84 agents
)


def read_scenarios() -> list[tuple[str, scenario_pb2.Scenario]]:
    out = []
    for path in SCENARIO_FILES:
        for index, serialized in tfrecord_io.iter_records(path):
            out.append((f"{path}:{index}", scenario_pb2.Scenario.FromString(serialized)))
    return out


@pytest.fixture(scope="session")
def scenarios():
    return read_scenarios()


@pytest.fixture(scope="session")
def cv_saved_model(tmp_path_factory):
    return signature.export_sim_agent(ConstantVelocityAgent(),
                                      str(tmp_path_factory.mktemp("models") / "cv"))


@pytest.fixture(scope="session")
def random_saved_model(tmp_path_factory):
    return signature.export_sim_agent(RandomAgent(),
                                      str(tmp_path_factory.mktemp("models") / "random"))
