"""Animation of one joint rollout of the demo policy: frames, GIF and MP4."""

from __future__ import annotations

import itertools

import imageio.v2 as imageio
import numpy as np
import pytest

from motion_sim.viz import animation


@pytest.fixture(scope="module")
def frames(demo_view, demo_events):
    return animation.render_frames(demo_view, demo_events, rollout=1, size_px=320)


def test_frames_move_the_agents(frames):
    assert len(frames) == 81  # the current step, then steps 11..90
    assert all(f.shape == (320, 320, 3) and f.dtype == np.uint8 for f in frames)
    assert len(np.unique(frames[40].reshape(-1, 3), axis=0)) > 50
    changed = [np.mean(np.any(a != b, -1)) for a, b in itertools.pairwise(frames)]
    assert min(changed) > 0.0  # every frame differs from the one before (boxes, clock)


def test_gif_and_mp4_hold_every_frame(tmp_path, frames):
    gif = animation.write_animation(frames, str(tmp_path / "r.gif"))
    mp4 = animation.write_animation(frames, str(tmp_path / "r.mp4"))
    back = imageio.mimread(gif)
    assert len(back) == 81 and back[0].shape[:2] == (320, 320)
    reader = imageio.get_reader(mp4)
    assert reader.count_frames() == 81
    assert reader.get_meta_data()["size"] == (320, 320)
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.gif", "r.mp4"]


def test_bad_arguments(demo_view, tmp_path):
    with pytest.raises(ValueError, match="rollout 9 out of range"):
        animation.render_frames(demo_view, rollout=9)
    with pytest.raises(ValueError, match="multiple of 16"):
        animation.render_frames(demo_view, size_px=300)
    with pytest.raises(ValueError, match="format must be one of"):
        animation.write_animation([np.zeros((16, 16, 3), np.uint8)], str(tmp_path / "x.avi"))
