"""Fixtures for the data tests: the bundled real samples, read once per session."""

import pytest

from motion_sim.data import example_reader, gpudrive_reader, scenario_reader
from tests.fixtures import EXAMPLE_FILE, GPUDRIVE_FILE, SCENARIO_FILE, WOMD_SCENARIO_FILE


@pytest.fixture(scope="session")
def womd_raw():
    """Scenario proto with 257 tracks (84 valid at the current step)."""
    return next(scenario_reader.read_scenario_files(WOMD_SCENARIO_FILE))


@pytest.fixture(scope="session")
def womd_lights_raw():
    """Scenario proto 637f20cafde22ff8 (83 tracks, 12 traffic-light lanes)."""
    return next(scenario_reader.read_scenario_files(SCENARIO_FILE))


@pytest.fixture(scope="session")
def example_raw():
    return next(example_reader.read_example_files(EXAMPLE_FILE))


@pytest.fixture(scope="session")
def gpudrive_raw():
    return gpudrive_reader.read_gpudrive_file(GPUDRIVE_FILE)


@pytest.fixture(scope="session")
def all_raws(womd_raw, womd_lights_raw, example_raw, gpudrive_raw):
    return [womd_raw, womd_lights_raw, example_raw, gpudrive_raw]
