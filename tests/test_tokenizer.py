"""ActionTokenizer: grid, Verlet dynamics, closed-loop encoding, gaps, decoding, headings."""

import numpy as np
import pytest
import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.tokenizer import ActionTokenizer

CUR = datatypes.CURRENT_INDEX


def _log_from_tokens(tok: ActionTokenizer, tokens, pos0, vel0):
    """A 91-step 10 Hz log that the tokenizer can represent exactly (history consistent with vel0)."""
    knots, vels = tok.decode_knots(tokens, pos0, vel0)
    fut = tok.upsample(knots, vels).numpy()
    hist_t = np.arange(-CUR, 1, dtype=np.float32) / datatypes.STEP_HZ  # constant velocity history
    hist = pos0[..., None, :] + hist_t[:, None] * vel0[..., None, :]
    return np.concatenate([hist, fut], axis=-2).astype(np.float32)


def test_grid_round_trip_and_range():
    tok = ActionTokenizer()
    assert tok.vocab_size == 169 and tok.num_tokens == 16 and tok.dt == 0.5
    all_tokens = tf.range(tok.vocab_size)
    acc = tok.accel(all_tokens).numpy()
    assert acc.min() == -6.0 and acc.max() == 6.0
    np.testing.assert_array_equal(acc[tok.zero_token], [0.0, 0.0])
    np.testing.assert_array_equal(tok.quantize(acc).numpy(), np.arange(169))
    # Out-of-range accelerations clip to the grid edge.
    np.testing.assert_array_equal(
        tok.accel(tok.quantize(tf.constant([[40.0, -9.0]]))).numpy(), [[6.0, -6.0]]
    )


def test_verlet_step_matches_paper_formula():
    tok = ActionTokenizer(token_hz=2)
    pos, vel = tf.constant([[1.0, 2.0]]), tf.constant([[3.0, -1.0]])
    token = tok.quantize(tf.constant([[2.0, -3.0]]))
    new_pos, new_vel = tok.step(pos, vel, token)
    a, dt = np.array([2.0, -3.0]), 0.5
    np.testing.assert_allclose(
        new_pos.numpy()[0], [1.0, 2.0] + ([3.0, -1.0] + a * dt) * dt, atol=1e-6
    )
    np.testing.assert_allclose(new_vel.numpy()[0], [3.0, -1.0] + a * dt, atol=1e-6)


@pytest.mark.parametrize("hz", [1, 2, 5, 10])
def test_encode_recovers_representable_tokens_exactly(hz):
    tok = ActionTokenizer(token_hz=hz)
    rng = np.random.default_rng(hz)
    tokens = rng.integers(0, tok.vocab_size, size=(7, tok.num_tokens)).astype(np.int32)
    pos0 = rng.normal(0, 20, size=(7, 2)).astype(np.float32)
    vel0 = rng.normal(0, 5, size=(7, 2)).astype(np.float32)
    xy = _log_from_tokens(tok, tokens, pos0, vel0)
    valid = np.ones(xy.shape[:-1], bool)
    got, got_valid = tok.encode(xy, valid)
    np.testing.assert_array_equal(got.numpy(), tokens)
    assert got_valid.numpy().all()
    err, mask = tok.reconstruction_error(xy, valid)
    assert mask.numpy().all() and err.numpy().max() < 1e-3


def test_invalid_hz_rejected():
    with pytest.raises(ValueError, match="token_hz"):
        ActionTokenizer(token_hz=3)


def test_gap_is_bridged_and_departure_coasts():
    """A log hole is interpolated over; after the agent leaves for good it coasts, tokens invalid."""
    tok = ActionTokenizer(token_hz=2)
    t = np.arange(datatypes.NUM_STEPS, dtype=np.float32) / 10.0
    xy = np.stack([10.0 * t, np.zeros_like(t)], -1)[None]  # 10 m/s along x
    valid = np.ones((1, datatypes.NUM_STEPS), bool)
    valid[0, 22:38] = False  # a 1.6 s hole
    valid[0, 70:] = False  # gone from 7 s on
    tokens, token_valid = tok.encode(xy, valid)
    target_steps = CUR + 5 * np.arange(1, 17)
    np.testing.assert_array_equal(token_valid.numpy()[0], valid[0, target_steps])
    # Constant velocity everywhere -> zero acceleration, including across the gap and after leaving.
    assert (tokens.numpy() == tok.zero_token).all()
    err, mask = tok.reconstruction_error(xy, valid)
    np.testing.assert_array_equal(mask.numpy()[0], valid[0, CUR + 1 :])
    assert err.numpy().max() < 1e-3


def test_agent_invalid_now_has_no_valid_tokens():
    tok = ActionTokenizer()
    xy = np.zeros((1, datatypes.NUM_STEPS, 2), np.float32)
    valid = np.ones((1, datatypes.NUM_STEPS), bool)
    valid[0, CUR] = False
    _, token_valid = tok.encode(xy, valid)
    assert not token_valid.numpy().any()


def test_initial_velocity_uses_nearest_earlier_step_when_log_has_hole():
    tok = ActionTokenizer(token_hz=10)
    t = np.arange(datatypes.NUM_STEPS, dtype=np.float32) / 10.0
    xy = np.stack([15.0 * t, 0 * t], -1)[None]
    valid = np.ones((1, datatypes.NUM_STEPS), bool)
    valid[0, 8:10] = False  # the step one interval back is missing
    _, vel = tok.initial_state(xy, valid)
    np.testing.assert_allclose(vel.numpy()[0], [15.0, 0.0], atol=1e-4)


def test_headings_follow_motion_and_hold_when_still():
    tok = ActionTokenizer(token_hz=2)
    xy = np.zeros((2, 80, 2), np.float32)
    xy[0, :, 1] = np.arange(1, 81) * 0.5  # moving along +y
    (heading,) = [
        tok.headings(xy, np.zeros((2, 2), np.float32), np.array([0.0, 1.2], np.float32)).numpy()
    ]
    np.testing.assert_allclose(heading[0], np.pi / 2, atol=1e-6)
    np.testing.assert_allclose(heading[1], 1.2, atol=1e-6)  # parked: keeps its logged yaw


def test_decode_shapes_with_leading_batch_and_rollout_axes():
    tok = ActionTokenizer(token_hz=2)
    tokens = tf.fill([2, 3, 5, 16], tok.zero_token)
    pos = tf.zeros([2, 3, 5, 2])
    vel = tf.ones([2, 3, 5, 2])
    xy, heading = tok.decode(tokens, pos, vel, tf.zeros([2, 3, 5]))
    assert xy.shape == (2, 3, 5, 80, 2) and heading.shape == (2, 3, 5, 80)
    np.testing.assert_allclose(xy.numpy()[0, 0, 0, -1], [8.0, 8.0], atol=1e-5)  # 8 s at 1 m/s
    np.testing.assert_allclose(heading.numpy()[..., 3], np.pi / 4, atol=1e-6)


def test_encode_runs_inside_xla():
    tok = ActionTokenizer(token_hz=2)
    xy = np.cumsum(np.random.default_rng(0).normal(0, 0.3, (4, 91, 2)), axis=1).astype(np.float32)
    valid = np.ones((4, 91), bool)
    eager = tok.encode(xy, valid)[0].numpy()
    compiled = tf.function(lambda a, b: tok.encode(a, b)[0], jit_compile=True)(xy, valid).numpy()
    np.testing.assert_array_equal(eager, compiled)


def test_agent_first_seen_now_starts_at_its_logged_velocity():
    """No earlier valid step: the logged velocity (if given) replaces a standing start."""
    tok = ActionTokenizer(token_hz=2)
    t = np.arange(91, dtype=np.float32) / 10.0
    xy = np.stack([12.0 * t, np.zeros_like(t)], -1)[None]  # 12 m/s along x
    valid = np.arange(91)[None] >= 10  # appears at the current step
    vel = np.broadcast_to(np.array([12.0, 0.0], np.float32), (1, 91, 2))
    _, still = tok.initial_state(xy, valid)
    _, moving = tok.initial_state(xy, valid, vel)
    np.testing.assert_allclose(still.numpy(), [[0.0, 0.0]])
    np.testing.assert_allclose(moving.numpy(), [[12.0, 0.0]])
    err_still, mask = tok.reconstruction_error(xy, valid)
    err_moving, _ = tok.reconstruction_error(xy, valid, vel)
    assert err_moving.numpy()[mask.numpy()].max() < 0.01
    assert err_still.numpy()[mask.numpy()].max() > 1.0
    # an earlier valid step still wins over the logged velocity
    _, from_log = tok.initial_state(xy, np.ones_like(valid), vel * 0.0)
    np.testing.assert_allclose(from_log.numpy(), [[12.0, 0.0]], rtol=1e-5)
