"""The experiment's held-out scenes get WOSAC-evaluated agents even from files that name none."""

import numpy as np

from motion_sim import experiment_data
from motion_sim.data import gpudrive_reader
from motion_sim.data.datatypes import CURRENT_INDEX
from tests.fixtures import SAMPLE_DIR


def test_tracks_to_predict_filled_only_when_missing():
    raw = gpudrive_reader.read_gpudrive_file(f"{SAMPLE_DIR}/scenario_1c365f15b70ebdbf.json")
    assert len(raw.tracks_to_predict)
    same, filled = experiment_data.with_evaluated_tracks(raw)
    assert not filled and same is raw
    bare = raw._replace(tracks_to_predict=np.zeros([0], np.int32))
    got, filled = experiment_data.with_evaluated_tracks(bare)
    rows = got.tracks_to_predict
    assert filled and 0 < len(rows) <= 8 and raw.sdc_index not in rows
    assert raw.valid[rows, CURRENT_INDEX:].all()  # fully observed future
    # The nearest fully observed agents to the SDC, none closer left out.
    full = [
        r for r in np.flatnonzero(raw.valid[:, CURRENT_INDEX:].all(axis=1)) if r != raw.sdc_index
    ]
    dist = np.linalg.norm(
        raw.xyz[:, CURRENT_INDEX, :2] - raw.xyz[raw.sdc_index, CURRENT_INDEX, :2], axis=-1
    )
    assert max(dist[rows]) <= min([dist[r] for r in full if r not in rows], default=np.inf)
