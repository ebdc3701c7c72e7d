"""Animation of one joint rollout: agent boxes moving over the map, 10 Hz (GIF or MP4).

One figure is drawn once (map, logged paths faint); each frame then only moves the agents'
box polygons and trails and redraws the canvas, so 81 frames take seconds. Boxes of agents
that collide at that step get a red outline, off-road vehicles an orange one.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib import patches as mpatches
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from motion_sim.data.datatypes import CURRENT_INDEX, STEP_HZ
from motion_sim.viz import figure as figure_lib
from motion_sim.viz import output_file
from motion_sim.viz.rollout_events import RolloutEvents
from motion_sim.viz.rollout_view import RolloutView

FORMATS = (".gif", ".mp4")


def render_frames(
    view: RolloutView, events: RolloutEvents | None = None, rollout: int = 0, size_px: int = 480
) -> list[np.ndarray]:
    """uint8 [H, W, 3] frames of joint rollout `rollout`: the current step, then steps 11..90.

    size_px is a multiple of 16 (MP4 encoders want macro-block sized frames).
    """
    if not 0 <= rollout < view.num_rollouts:
        raise ValueError(f"rollout {rollout} out of range [0, {view.num_rollouts})")
    if size_px % 16:
        raise ValueError(f"size_px must be a multiple of 16, got {size_px}")
    dpi = 80
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0.0, 0.0, 1.0, 0.94])
    extent = figure_lib.view_extent(view)
    figure_lib.draw_map(ax, view)
    colours = figure_lib.agent_colours(len(view.agent_mask))
    rows = np.flatnonzero(view.rollout_mask)
    # Positions of frame f: the logged current state, then the sampled steps.
    xy = np.concatenate(
        [view.agent_xy[None, :, CURRENT_INDEX], np.transpose(view.rollout_xy[rollout], (1, 0, 2))],
        axis=0,
    )  # [81, A, 2]
    heading = np.concatenate(
        [view.agent_heading[None, :, CURRENT_INDEX], view.rollout_heading[rollout].T], axis=0
    )  # [81, A]
    collided = np.zeros(xy.shape[:2], bool)
    offroad = np.zeros(xy.shape[:2], bool)
    if events is not None:
        collided[1:] = events.collided[rollout].T
        offroad[1:] = events.offroad[rollout].T
    for a in rows:  # the log, faint, for reference
        valid = view.agent_valid[a, CURRENT_INDEX:]
        log = view.agent_xy[a, CURRENT_INDEX:][valid]
        ax.plot(log[:, 0], log[:, 1], color=colours[a], linewidth=0.7, alpha=0.35, zorder=2)
    boxes, trails = {}, {}
    for a in rows:
        boxes[a] = ax.add_patch(
            mpatches.Polygon(np.zeros((4, 2)), closed=True, facecolor=colours[a], zorder=5)
        )
        (trails[a],) = ax.plot([], [], color=colours[a], linewidth=1.3, zorder=4)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_axis_off()
    title = fig.text(0.5, 0.965, "", ha="center", va="center", fontsize=10)
    frames = []
    for f in range(xy.shape[0]):
        for a in rows:
            boxes[a].set_xy(
                figure_lib.box_polygon(
                    xy[f, a], heading[f, a], view.agent_size[a, 0], view.agent_size[a, 1]
                )
            )
            edge, width = (
                (figure_lib.COLLISION_COLOUR, 2.0)
                if collided[f, a]
                else (figure_lib.OFFROAD_COLOUR, 2.0)
                if offroad[f, a]
                else ("black" if a == 0 else colours[a] * 0.6, 0.8)
            )
            boxes[a].set_edgecolor(edge)
            boxes[a].set_linewidth(width)
            trails[a].set_data(xy[: f + 1, a, 0], xy[: f + 1, a, 1])
        title.set_text(
            f"{view.scenario_id}  rollout {rollout}  t = +{f / STEP_HZ:.1f} s  "
            f"collided {int(collided[f].sum())}  off-road {int(offroad[f].sum())}"
        )
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return frames


def write_animation(frames: list[np.ndarray], path: str, fps: int = STEP_HZ) -> str:
    """Writes frames as a GIF or MP4 (by extension) to a temp file, then renames it."""
    import imageio.v2 as imageio  # imported here: only the CLI writes animations

    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: animation format must be one of {FORMATS}")
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    with output_file.atomic_output(path) as tmp:
        if suffix == ".gif":
            # Pillow's GIF writer takes the frame duration in milliseconds; loop forever.
            imageio.mimsave(tmp, frames, format="GIF", duration=1000.0 / fps, loop=0)
        else:
            imageio.mimsave(
                tmp,
                frames,
                format="FFMPEG",
                fps=fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=16,
            )
    return path
