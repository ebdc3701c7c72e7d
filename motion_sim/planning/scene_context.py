"""Everything the closed-loop evaluation needs about one logged scene, built once."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from motion_sim.data import datatypes, frames
from motion_sim.planning.route import LoggedPath

_CUR = datatypes.CURRENT_INDEX
# Other objects are padded to a multiple of this (invalid rows), so scenes share compiled shapes.
OBJECT_BUCKET = 64


class SceneContext(NamedTuple):
    """One scene, scene frame (origin and x axis = the SDC's pose now). O other objects.

    Attributes:
      scenario_id: str.
      scene: dict of batched (B = 1) numpy `Scene` fields (the model's input).
      av_row: int, the SDC's row in `scene`.
      av_state: [4] float32 (x, y, heading, speed) of the SDC now.
      av_size: [3] float32 length, width, height.
      av_z: [1 + 80] float32 WORLD-frame logged height (held after the log ends), for the
        road-edge search's z-stretch.
      path: the SDC's logged path.
      others_xy: [O, 91, 2] float32 logged positions; others_vel [O, 91, 2]; others_heading
        [O, 91]; others_valid [O, 91] bool; others_size [O, 2] length, width.
      held_rows: [O] int32 row of the object in `scene` (-1: the scene does not hold it, so
        every world replays its log). O is padded to a multiple of OBJECT_BUCKET with
        never-valid rows.
      edges: the `ScenarioArrays` edge_* tables (world frame).
    """

    scenario_id: str
    scene: dict
    av_row: int
    av_state: np.ndarray
    av_size: np.ndarray
    av_z: np.ndarray
    path: LoggedPath
    others_xy: np.ndarray
    others_vel: np.ndarray
    others_heading: np.ndarray
    others_valid: np.ndarray
    others_size: np.ndarray
    held_rows: np.ndarray
    edges: dict


def build_context(raw: datatypes.RawScenario, scene: datatypes.Scene, edges: dict) -> SceneContext:
    """Context of a scenario from its `RawScenario`, its built `Scene` and its road edges."""
    sdc = int(raw.sdc_index)
    frame = scene._asdict()
    xy, heading = frames.to_scene(raw.xyz[..., :2], raw.heading, frame)
    yaw = float(scene.frame_yaw)
    c, s = np.cos(yaw), np.sin(yaw)
    vel = np.stack(
        [
            c * raw.velocity[..., 0] + s * raw.velocity[..., 1],
            -s * raw.velocity[..., 0] + c * raw.velocity[..., 1],
        ],
        axis=-1,
    )
    row_of = {int(i): r for r, i in enumerate(scene.agent_id) if scene.agent_mask[r]}
    others = [i for i in range(len(raw.track_id)) if i != sdc and raw.valid[i, _CUR:].any()]
    held = np.array([row_of.get(int(raw.track_id[i]), -1) for i in others], np.int32)
    # Held objects first (in scene row order), then the log-only ones.
    order = sorted(range(len(others)), key=lambda k: (held[k] < 0, held[k]))
    others = [others[k] for k in order]
    held = held[order]
    size = raw.size[:, :, :2]
    first_valid = np.argmax(raw.valid, axis=1)
    cur_size = np.where(
        raw.valid[:, _CUR, None], size[:, _CUR], size[np.arange(len(size)), first_valid]
    )
    av_speed = float(np.linalg.norm(raw.velocity[sdc, _CUR]))
    z = raw.xyz[sdc, :, 2]
    z = np.where(raw.valid[sdc], z, z[_CUR])[_CUR:]
    batched = {k: np.asarray(v)[None] for k, v in frame.items()}
    pad = -len(others) % OBJECT_BUCKET or (OBJECT_BUCKET if not others else 0)
    padded = lambda x: np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])  # noqa: E731
    return SceneContext(
        scenario_id=str(raw.scenario_id),
        scene=batched,
        av_row=int(scene.sdc_index),
        av_state=np.array([*xy[sdc, _CUR], heading[sdc, _CUR], av_speed], np.float32),
        av_size=np.asarray(raw.size[sdc, _CUR], np.float32),
        av_z=z.astype(np.float32),
        path=LoggedPath.from_log(xy[sdc], raw.valid[sdc]),
        others_xy=padded(xy[others].astype(np.float32)),
        others_vel=padded(vel[others].astype(np.float32)),
        others_heading=padded(heading[others].astype(np.float32)),
        others_valid=padded(raw.valid[others]),
        others_size=padded(cur_size[others].astype(np.float32)),
        held_rows=np.concatenate([held, np.full(pad, -1, np.int32)]),
        edges=edges,
    )
