"""Fixtures for the data tests: the bundled real samples, read once per session."""
import os

import pytest

from motion_sim.data import example_reader, gpudrive_reader, scenario_reader

SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "motion_sim", "data", "sample")
SCENARIO_FILES = [os.path.join(SAMPLE_DIR, "womd_scenario_input.tfrecord"),
                  os.path.join(SAMPLE_DIR, "motion_data_one_scenario.tfrecord")]
EXAMPLE_FILE = os.path.join(SAMPLE_DIR, "motion_data_one_example.tfrecord")
GPUDRIVE_FILE = os.path.join(SAMPLE_DIR, "scenario_1c365f15b70ebdbf.json")


@pytest.fixture(scope="session")
def womd_raw():
    """Scenario proto with 257 tracks (84 valid at the current step)."""
    return next(scenario_reader.read_scenario_files(SCENARIO_FILES[0]))


@pytest.fixture(scope="session")
def womd_lights_raw():
    """Scenario proto 637f20cafde22ff8 (83 tracks, 12 traffic-light lanes)."""
    return next(scenario_reader.read_scenario_files(SCENARIO_FILES[1]))


@pytest.fixture(scope="session")
def example_raw():
    return next(example_reader.read_example_files(EXAMPLE_FILE))


@pytest.fixture(scope="session")
def gpudrive_raw():
    return gpudrive_reader.read_gpudrive_file(GPUDRIVE_FILE)


@pytest.fixture(scope="session")
def all_raws(womd_raw, womd_lights_raw, example_raw, gpudrive_raw):
    return [womd_raw, womd_lights_raw, example_raw, gpudrive_raw]
