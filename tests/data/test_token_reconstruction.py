"""Tokenised ground truth decoded back to 10 Hz stays close to the log on every real sample.

The figures (mean / max over valid agent-steps) are what WORKSPACE.md reports; the bound is the
issue's 0.2 m mean at 2 Hz. 10 Hz tokens must work on the same scenes too.
"""

import pytest

from motion_sim.data import scene_builder
from motion_sim.tokenizer import ActionTokenizer


# At 10 Hz one grid step moves a position by only 6 m/s^2 * 0.01 s^2 = 6 cm, so a one-frame log
# glitch (a 1.4 m jump in 0.1 s in 637f20cafde22ff8) shows up almost whole in the max.
@pytest.mark.parametrize("token_hz, mean_bound, max_bound", [(2, 0.2, 2.0), (10, 0.1, 4.0)])
def test_reconstruction_error_on_real_scenes(all_raws, token_hz, mean_bound, max_bound):
    tok = ActionTokenizer(token_hz=token_hz)
    for raw in all_raws:
        scene, _ = scene_builder.build_scene(raw)
        err, mask = tok.reconstruction_error(
            scene.agent_xy, scene.agent_valid & scene.agent_mask[:, None]
        )
        e = err.numpy()[mask.numpy()]
        assert e.size > 1000, raw.source  # every sample has >1000 valid future agent-steps
        assert e.mean() <= mean_bound, (raw.source, e.mean())
        # Log glitches beyond +-6 m/s^2 cannot be followed exactly, but closed-loop encoding
        # must never drift away: the worst step stays within a couple of metres.
        assert e.max() < max_bound, (raw.source, e.max())
