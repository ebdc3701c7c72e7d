"""TEST FIXTURE ONLY -- not a production scene builder.

Until `motion_sim.data.scene_builder.build_scene` is importable, the export tests need Scene
inputs from a Scenario proto. This fills the Scene fields the baselines read (agents and frame),
following the `datatypes.Scene` contract (scene frame at the SDC, SDC first, then
tracks_to_predict, then nearest; at most MAX_AGENTS), and leaves the map / traffic lights empty.
`install(monkeypatch)` routes `export.scene_input.scene_from_scenario` to it only when the real
builder is missing, so the tests switch to the real one as soon as it lands.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from motion_sim.data import datatypes


def real_builder_available() -> bool:
    return (importlib.util.find_spec("motion_sim.data.scene_builder") is not None
            and importlib.util.find_spec("motion_sim.data.scenario_reader") is not None)


def fixture_scene_from_scenario(scenario, source: str = "") -> dict:
    cur = datatypes.CURRENT_INDEX
    spec = datatypes.scene_spec()
    out = {name: np.zeros(shape, dtype) for name, (shape, dtype) in spec.items()
           if dtype is not np.object_}
    out["scenario_id"] = np.asarray(scenario.scenario_id, dtype=np.object_)
    out["agent_id"][:] = -1
    tracks = scenario.tracks
    sdc = tracks[scenario.sdc_track_index].states[cur]
    origin = np.array([sdc.center_x, sdc.center_y, sdc.center_z], np.float64)
    yaw = float(sdc.heading)
    ttp = {p.track_index for p in scenario.tracks_to_predict}
    valid_rows = [i for i, t in enumerate(tracks) if t.states[cur].valid]

    def order(i):
        s = tracks[i].states[cur]
        dist = np.hypot(s.center_x - origin[0], s.center_y - origin[1])
        return (i != scenario.sdc_track_index, i not in ttp, dist)

    rows = sorted(valid_rows, key=order)
    kept, dropped = rows[:datatypes.MAX_AGENTS], rows[datatypes.MAX_AGENTS:]
    c, s = np.cos(-yaw), np.sin(-yaw)
    rot = np.array([[c, -s], [s, c]])
    for a, i in enumerate(kept):
        st = tracks[i].states
        xyz = np.array([[x.center_x, x.center_y, x.center_z] for x in st], np.float64)
        vel = np.array([[x.velocity_x, x.velocity_y] for x in st], np.float64)
        heading = np.array([x.heading for x in st], np.float64)
        valid = np.array([x.valid for x in st], bool)
        out["agent_xy"][a] = (xyz[:, :2] - origin[:2]) @ rot.T
        out["agent_z"][a] = xyz[:, 2] - origin[2]
        out["agent_vel"][a] = vel @ rot.T
        out["agent_heading"][a] = (heading - yaw + np.pi) % (2 * np.pi) - np.pi
        out["agent_valid"][a] = valid
        out["agent_size"][a] = [st[cur].length, st[cur].width, st[cur].height]
        out["agent_type"][a] = tracks[i].object_type
        out["agent_mask"][a] = True
        out["agent_id"][a] = tracks[i].id
        out["tracks_to_predict"][a] = i in ttp
    out["num_agents_dropped"] = np.int32(len(dropped))
    out["frame_origin"] = origin
    out["frame_yaw"] = np.float64(yaw)
    return out


def install(monkeypatch) -> None:
    """Use the fixture builder only if the real one is not there yet."""
    if real_builder_available():
        return
    from export import scene_input
    monkeypatch.setattr(scene_input, "scene_from_scenario", fixture_scene_from_scenario)
