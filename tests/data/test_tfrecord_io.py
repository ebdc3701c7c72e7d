"""Corrupt inputs: truncated TFRecords and garbage bytes raise errors naming file and record."""

import numpy as np
import pytest

from motion_sim.data import scenario_reader
from motion_sim.data.datatypes import ScenarioError
from motion_sim.data.tfrecord_io import expand_pattern, iter_records
from tests.fixtures import SCENARIO_FILES, WOMD_SCENARIO_FILE


def test_truncated_tfrecord(tmp_path):
    data = open(WOMD_SCENARIO_FILE, "rb").read()
    path = tmp_path / "two_then_truncated.tfrecord"
    path.write_bytes(data + data[: len(data) // 2])  # record 0 intact, record 1 cut short
    records = iter_records(str(path))
    index, first = next(records)
    assert index == 0 and first == data[12:-4]  # payload between length+crc and data crc
    with pytest.raises(ScenarioError, match=rf"{path}:1: corrupt or truncated TFRecord") as e:
        next(records)
    assert e.value.reason == "corrupt_tfrecord"
    with pytest.raises(ScenarioError, match="two_then_truncated.tfrecord:1"):
        list(scenario_reader.read_scenario_files(str(path)))


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.tfrecord"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ScenarioError, match=rf"{path}:0: corrupt or truncated") as e:
        list(scenario_reader.read_scenario_files(str(path)))
    assert e.value.reason == "corrupt_tfrecord"


def test_expand_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="no files match"):
        expand_pattern(str(tmp_path / "*.tfrecord"))
    assert expand_pattern(",".join(SCENARIO_FILES)) == sorted(SCENARIO_FILES)
