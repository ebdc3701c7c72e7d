"""Shared fixtures for the export tests: the bundled WOMD Scenario samples and baseline models."""

from __future__ import annotations

import pytest

from export import signature
from motion_sim.agents.constant_velocity import ConstantVelocityAgent
from motion_sim.agents.random_agent import RandomAgent
from tests.fixtures.scenarios import read_scenarios


@pytest.fixture(scope="session")
def scenarios():
    return read_scenarios()


@pytest.fixture(scope="session")
def cv_saved_model(tmp_path_factory):
    return signature.export_sim_agent(
        ConstantVelocityAgent(), str(tmp_path_factory.mktemp("models") / "cv")
    )


@pytest.fixture(scope="session")
def random_saved_model(tmp_path_factory):
    return signature.export_sim_agent(
        RandomAgent(), str(tmp_path_factory.mktemp("models") / "random")
    )
