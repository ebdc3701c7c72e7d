"""Bird's-eye figure of sampled rollouts in the style of the paper's Fig. 5 (matplotlib, Agg).

Two panels share the map: the log (each agent's logged future as a line) and the R sampled
rollouts (each agent's sampled positions as points in the agent's colour). Every agent's start
box is drawn at the current step (the SDC with a black outline and a star); collided steps are
red crosses and off-road steps orange triangles (at the first step of
each event) on the rollouts panel.

Figures are built with `matplotlib.figure.Figure` and the Agg canvas, never pyplot, so no
global state is touched and a background thread (the TensorBoard image trigger) can render.
"""

from __future__ import annotations

import colorsys
import io

import numpy as np
from matplotlib import collections as mcollections
from matplotlib import lines as mlines
from matplotlib import patches as mpatches
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from motion_sim.data.datatypes import CURRENT_INDEX, MapType
from motion_sim.viz import output_file
from motion_sim.viz.rollout_events import RolloutEvents
from motion_sim.viz.rollout_view import RolloutView

# MapType -> (colour, line width, line style, legend group). Lanes light, edges dark.
MAP_STYLE = {
    MapType.LANE_FREEWAY: ("#c9c9c9", 0.8, "--", "lane"),
    MapType.LANE_SURFACE_STREET: ("#c9c9c9", 0.8, "--", "lane"),
    MapType.LANE_BIKE: ("#b7d7b0", 0.8, "--", "lane"),
    MapType.LANE_UNDEFINED: ("#c9c9c9", 0.8, "--", "lane"),
    MapType.ROAD_LINE_BROKEN: ("#9a9a9a", 0.8, (0, (4, 4)), "road line"),
    MapType.ROAD_LINE_SOLID: ("#8a8a8a", 0.9, "-", "road line"),
    MapType.ROAD_LINE_DOUBLE: ("#d8b23a", 1.1, "-", "road line"),
    MapType.ROAD_LINE_OTHER: ("#9a9a9a", 0.8, "-", "road line"),
    MapType.ROAD_EDGE_BOUNDARY: ("#222222", 1.4, "-", "road edge"),
    MapType.ROAD_EDGE_MEDIAN: ("#444444", 1.4, "-", "road edge"),
    MapType.ROAD_EDGE_OTHER: ("#222222", 1.4, "-", "road edge"),
    MapType.CROSSWALK: ("#9c88c9", 1.0, "-", "crosswalk"),
    MapType.STOP_SIGN: ("#d62728", 2.0, "-", "stop sign"),
    MapType.SPEED_BUMP: ("#e08a2c", 1.2, "-", "speed bump"),
    MapType.DRIVEWAY: ("#b89b72", 0.8, "-", "driveway"),
}
COLLISION_COLOUR = "#e31a1c"
OFFROAD_COLOUR = "#ff9d00"
# Rollout points every other 10 Hz step: denser adds pixels, not information.
POINT_STRIDE = 2


def agent_colours(num: int) -> np.ndarray:
    """[num, 3] distinct RGB colours (hues spaced by the golden ratio, saturated, mid value)."""
    hues = (np.arange(num) * 0.618033988749895) % 1.0
    return np.array([colorsys.hsv_to_rgb(h, 0.85, 0.85) for h in hues]).reshape(num, 3)


def view_extent(view: RolloutView, margin_m: float = 12.0, max_half_m: float = 120.0):
    """Square (xmin, xmax, ymin, ymax) around the simulated agents' starts and logged futures."""
    rows = np.flatnonzero(view.rollout_mask)
    pts = [view.agent_xy[rows, CURRENT_INDEX]]
    future = view.agent_valid[rows, CURRENT_INDEX:]
    pts.append(view.agent_xy[rows, CURRENT_INDEX:][future])
    pts = np.concatenate(pts) if rows.size else np.zeros((1, 2))
    lo, hi = pts.min(0) - margin_m, pts.max(0) + margin_m
    centre = 0.5 * (lo + hi)
    half = min(max(0.5 * float(np.max(hi - lo)), 20.0), max_half_m)
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def draw_map(ax, view: RolloutView) -> None:
    """Map polylines as one LineCollection per type (gid `map:<TYPE>`)."""
    for map_type, (colour, width, style, _) in MAP_STYLE.items():
        polylines = [
            view.map_xy[p][view.map_valid[p]]
            for p in np.flatnonzero(view.map_type == int(map_type))
        ]
        segments = [p for p in polylines if len(p) >= 2]
        if segments:
            ax.add_collection(
                mcollections.LineCollection(
                    segments,
                    colors=colour,
                    linewidths=width,
                    linestyles=style,
                    zorder=1,
                    gid=f"map:{map_type.name}",
                )
            )
        single = np.array([p[0] for p in polylines if len(p) == 1]).reshape(-1, 2)
        if len(single):  # stop signs are single points
            ax.scatter(single[:, 0], single[:, 1], s=18, marker="8", color=colour, zorder=2)


def box_polygon(xy, heading, length, width) -> np.ndarray:
    """[4, 2] corners of a box centred at xy with yaw heading."""
    c, s = np.cos(heading), np.sin(heading)
    along = np.array([c, s]) * 0.5 * length
    across = np.array([-s, c]) * 0.5 * width
    return np.array(
        [xy + along + across, xy + along - across, xy - along - across, xy - along + across]
    )


def draw_start_boxes(ax, view: RolloutView, colours: np.ndarray) -> None:
    """Every simulated agent's box at the current step; the SDC (row 0) outlined in black."""
    for a in np.flatnonzero(view.rollout_mask):
        corners = box_polygon(
            view.agent_xy[a, CURRENT_INDEX],
            view.agent_heading[a, CURRENT_INDEX],
            view.agent_size[a, 0],
            view.agent_size[a, 1],
        )
        ax.add_patch(
            mpatches.Polygon(
                corners,
                closed=True,
                facecolor=colours[a],
                edgecolor="black" if a == 0 else colours[a] * 0.6,
                linewidth=1.2 if a == 0 else 0.6,
                zorder=5,
                gid=f"start:{int(view.agent_id[a])}",
            )
        )
    ax.scatter(
        [view.agent_xy[0, CURRENT_INDEX, 0]],
        [view.agent_xy[0, CURRENT_INDEX, 1]],
        marker="*",
        s=110,
        color="black",
        zorder=6,
        gid="sdc",
    )


def _style_axes(ax, extent, title: str) -> None:
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("x (m, SDC frame)", fontsize=8)
    ax.set_facecolor("#f7f7f5")


def render_figure(
    view: RolloutView,
    events: RolloutEvents | None = None,
    *,
    size_inches: tuple[float, float] = (12.0, 6.2),
    dpi: int = 100,
    title: str | None = None,
) -> Figure:
    """The two-panel figure (log | sampled rollouts) of one scene.

    Artists carry gids the tests read: `log:<object id>` (one line per agent with a logged
    future), `rollout:<object id>` (one point set per simulated agent, all R rollouts),
    `collisions`, `offroad`, `start:<object id>`, `sdc`, `map:<MapType>`.
    """
    fig = Figure(figsize=size_inches, dpi=dpi)
    FigureCanvasAgg(fig)
    ax_log, ax_sim = fig.subplots(1, 2)
    colours = agent_colours(len(view.agent_mask))
    extent = view_extent(view)
    rows = np.flatnonzero(view.rollout_mask)
    for ax in (ax_log, ax_sim):
        draw_map(ax, view)
        draw_start_boxes(ax, view, colours)
    for a in rows:
        valid = view.agent_valid[a, CURRENT_INDEX:]
        if valid.sum() >= 2:
            xy = view.agent_xy[a, CURRENT_INDEX:][valid]
            ax_log.plot(
                xy[:, 0],
                xy[:, 1],
                color=colours[a],
                linewidth=1.6,
                zorder=4,
                gid=f"log:{int(view.agent_id[a])}",
            )
        pts = view.rollout_xy[:, a, POINT_STRIDE - 1 :: POINT_STRIDE].reshape(-1, 2)
        ax_sim.scatter(
            pts[:, 0],
            pts[:, 1],
            s=1.5,
            color=colours[a],
            alpha=0.55,
            linewidths=0,
            zorder=3,
            gid=f"rollout:{int(view.agent_id[a])}",
            rasterized=True,
        )
    num_collided = num_offroad = 0
    if events is not None:
        for flags, colour, marker, gid in (
            (events.collided, COLLISION_COLOUR, "x", "collisions"),
            (events.offroad, OFFROAD_COLOUR, "^", "offroad"),
        ):
            # The first step of each (rollout, agent) event: a marker per event, not per step.
            first = flags & (np.cumsum(flags, axis=-1) == 1) & view.rollout_mask[None, :, None]
            pts = view.rollout_xy[first]
            ax_sim.scatter(
                pts[:, 0],
                pts[:, 1],
                s=14,
                marker=marker,
                color=colour,
                linewidths=0.9,
                zorder=7,
                gid=gid,
            )
        num_collided = int(np.any(events.collided, axis=-1)[:, rows].sum())
        num_offroad = int(np.any(events.offroad, axis=-1)[:, rows].sum())
    pairs = view.num_rollouts * rows.size
    _style_axes(ax_log, extent, "logged future")
    _style_axes(
        ax_sim,
        extent,
        f"{view.num_rollouts} sampled rollouts: collided "
        f"{num_collided}/{pairs}, off-road {num_offroad}/{pairs} agent-rollouts",
    )
    ax_log.set_ylabel("y (m)", fontsize=8)
    handles = [
        mlines.Line2D([], [], color=c, linewidth=w, linestyle=s, label=g)
        for g, (c, w, s) in _legend_groups().items()
    ]
    handles += [
        mlines.Line2D([], [], color=COLLISION_COLOUR, marker="x", linestyle="", label="collision"),
        mlines.Line2D([], [], color=OFFROAD_COLOUR, marker="^", linestyle="", label="off-road"),
        mlines.Line2D([], [], color="black", marker="*", linestyle="", label="SDC start"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title or f"scenario {view.scenario_id}: {rows.size} agents", fontsize=11)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.90, bottom=0.13, wspace=0.12)
    return fig


def _legend_groups() -> dict:
    groups = {}
    for colour, width, style, group in MAP_STYLE.values():
        groups.setdefault(group, (colour, width, style))
    return groups


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """uint8 [H, W, 3] pixels of a rendered figure."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def figure_png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str) -> str:
    """Writes the figure (format from the extension) atomically."""
    with output_file.atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=fig.dpi)
    return path
