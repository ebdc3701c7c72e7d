"""The bundled WOMD Scenario samples the export tests run on (uniquely named: imported by tests)."""
from __future__ import annotations

import os

from waymo_open_dataset.protos import scenario_pb2

from motion_sim.data import tfrecord_io

SAMPLE_DIR = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "motion_sim", "data", "sample"))
SCENARIO_FILES = (
    os.path.join(SAMPLE_DIR, "motion_data_one_scenario.tfrecord"),  # 637f20cafde22ff8, 50 agents
    os.path.join(SAMPLE_DIR, "womd_scenario_input.tfrecord"),  # ee519cf571686d19, 84 agents
)


def read_scenarios() -> list[tuple[str, scenario_pb2.Scenario]]:
    """("file:record", Scenario) for every record of the samples."""
    out = []
    for path in SCENARIO_FILES:
        for index, serialized in tfrecord_io.iter_records(path):
            out.append((f"{path}:{index}", scenario_pb2.Scenario.FromString(serialized)))
    return out


# Python source that makes any `import motion_sim...` fail in the interpreter that runs it: the
# TF-only tests prepend it to their scripts to prove exported models need TensorFlow alone.
BLOCK_MOTION_SIM = """import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "motion_sim" or name.startswith("motion_sim."):
            raise ImportError("motion_sim is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
"""
