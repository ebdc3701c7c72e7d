"""The Fig.-5-style figure of the demo policy's rollouts on the shared WOMD scene."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from motion_sim.data.datatypes import CURRENT_INDEX, MapType
from motion_sim.viz import figure


def _gids(fig, prefix):
    return {
        a.get_gid(): a
        for ax in fig.axes
        for a in ax.get_children()
        if isinstance(a.get_gid(), str) and a.get_gid().startswith(prefix)
    }


def test_figure_has_one_rollout_trace_per_agent_and_the_log(demo_view, demo_events):
    fig = figure.render_figure(demo_view, demo_events)
    agents = np.flatnonzero(demo_view.rollout_mask)
    assert len(agents) == 50  # every agent of 637f20cafde22ff8
    traces = _gids(fig, "rollout:")
    assert sorted(traces) == sorted(f"rollout:{demo_view.agent_id[a]}" for a in agents)
    # Each trace holds that agent's sampled points of all R rollouts, at the plotted stride.
    a = agents[3]
    points = traces[f"rollout:{demo_view.agent_id[a]}"].get_offsets()
    want = demo_view.rollout_xy[:, a, figure.POINT_STRIDE - 1 :: figure.POINT_STRIDE].reshape(-1, 2)
    np.testing.assert_allclose(points, want, rtol=0, atol=1e-4)
    logged = [a for a in agents if demo_view.agent_valid[a, CURRENT_INDEX:].sum() >= 2]
    assert len(_gids(fig, "log:")) == len(logged) > 40
    assert len(_gids(fig, "start:")) == len(agents)
    assert {"map:ROAD_EDGE_BOUNDARY", "map:CROSSWALK"} <= set(_gids(fig, "map:"))
    # Events are drawn at the first step of each (rollout, agent) event.
    collisions = _gids(fig, "collisions")["collisions"].get_offsets()
    assert len(collisions) == int(np.any(demo_events.collided, -1).sum())


def test_figure_pixels_are_a_real_picture(demo_view, demo_events):
    fig = figure.render_figure(demo_view, demo_events)
    rgb = figure.figure_to_rgb(fig)
    assert rgb.shape == (620, 1200, 3) and rgb.dtype == np.uint8
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 200  # map greys, 50 agent colours, markers, anti-aliasing
    # The rollouts panel is not blank: a good share of it differs from the background.
    right = rgb[80:520, 650:1150].reshape(-1, 3)
    background = np.array([247, 247, 245])
    assert np.mean(np.any(right != background, axis=-1)) > 0.15
    png = figure.figure_png_bytes(fig)
    assert Image.open(io.BytesIO(png)).size == (1200, 620)


def test_save_figure_is_atomic_and_readable(tmp_path, demo_view):
    path = figure.save_figure(figure.render_figure(demo_view), str(tmp_path / "a" / "fig.png"))
    assert Image.open(path).size == (1200, 620)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["fig.png"]  # no temp file left


def test_map_styles_cover_every_map_type():
    assert set(figure.MAP_STYLE) == set(MapType) - {MapType.PAD}
