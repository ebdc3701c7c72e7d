"""Verlet-wrapped acceleration action tokens (paper Sec. 3.2).

An agent's state at token step k is (pos_k, vel_k) in the scene frame; an action is an
acceleration a_k from a uniform `num_bins` x `num_bins` grid over [-max_accel, max_accel] per axis:

    vel_{k+1} = vel_k + a_k * dt
    pos_{k+1} = pos_k + vel_{k+1} * dt        (= pos_k + (vel_k + a_k dt) dt)

so vel_k is always the mean velocity over the previous interval, (pos_k - pos_{k-1}) / dt.

Ground truth is tokenised *closed loop*: each action is chosen from the previously reconstructed
state (not the raw log), so quantisation error does not accumulate. Agents that vanish from the
log for a while are steered towards the log interpolated over the gap; once an agent has left for
good it coasts (zero acceleration) and its tokens are marked invalid.

Decoding gives token-rate knots; `upsample` fills the 10 Hz WOSAC steps with a cubic Hermite
spline through the knots (exact at the knots, C1 between them) and `headings` derives yaw from
the motion when the agent moves and holds it when it is (nearly) still.

Everything is TensorFlow with static shapes and Python loops over the (static) token steps, so
the same code runs eagerly on numpy input, in `tf.data`, and inside XLA-compiled rollouts.
Leading dimensions (batch, rollouts, agents) are arbitrary: shapes below write them as `...`.
"""

from __future__ import annotations

import tensorflow as tf

import gin
from motion_sim.data import datatypes

_STEP_HZ = datatypes.STEP_HZ
_CUR = datatypes.CURRENT_INDEX
_NUM_FUTURE = datatypes.NUM_FUTURE_STEPS


@gin.configurable
class ActionTokenizer:
    """Maps scene-frame trajectories to/from acceleration tokens.

    Args:
      token_hz: token rate; 10 must be divisible by it (1, 2, 5 or 10 Hz). The paper uses 2 Hz.
      num_bins: grid size per axis (odd, so zero acceleration is a bin).
      max_accel: grid half-width in m/s^2; larger accelerations are clipped.
      still_distance: below this 10 Hz displacement (m) an agent keeps its previous heading.
    """

    def __init__(
        self,
        token_hz: int = 2,
        num_bins: int = 13,
        max_accel: float = 6.0,
        still_distance: float = 0.05,
    ):
        if token_hz <= 0 or _STEP_HZ % token_hz:
            raise ValueError(f"token_hz must divide {_STEP_HZ} (1, 2, 5 or 10), got {token_hz}")
        if num_bins < 3 or num_bins % 2 == 0:
            raise ValueError(f"num_bins must be odd and >= 3, got {num_bins}")
        self.token_hz = token_hz
        self.num_bins = num_bins
        self.max_accel = float(max_accel)
        self.still_distance = float(still_distance)
        self.steps_per_token = _STEP_HZ // token_hz
        self.num_tokens = _NUM_FUTURE // self.steps_per_token
        self.dt = 1.0 / token_hz
        self.bin_size = 2.0 * self.max_accel / (num_bins - 1)
        self.vocab_size = num_bins * num_bins
        # Token id = ix * num_bins + iy; the centre bin is zero acceleration.
        self.zero_token = (num_bins // 2) * num_bins + num_bins // 2

    # ------------------------------------------------------------------ grid
    def accel(self, tokens: tf.Tensor, dtype=tf.float32) -> tf.Tensor:
        """[...] int tokens -> [..., 2] accelerations (m/s^2)."""
        tokens = tf.cast(tokens, tf.int32)
        ix = tokens // self.num_bins
        iy = tokens % self.num_bins
        idx = tf.stack([ix, iy], axis=-1)
        return tf.cast(idx - self.num_bins // 2, dtype) * tf.cast(self.bin_size, dtype)

    def quantize(self, accel: tf.Tensor) -> tf.Tensor:
        """[..., 2] accelerations -> [...] int32 nearest grid token (clipped to the grid)."""
        half = self.num_bins // 2
        idx = tf.cast(tf.round(accel / self.bin_size), tf.int32) + half
        idx = tf.clip_by_value(idx, 0, self.num_bins - 1)
        return idx[..., 0] * self.num_bins + idx[..., 1]

    def step(self, pos: tf.Tensor, vel: tf.Tensor, tokens: tf.Tensor):
        """One Verlet step: ([..., 2], [..., 2], [...]) -> (pos, vel) at the next token step."""
        vel = vel + self.accel(tokens, pos.dtype) * self.dt
        return pos + vel * self.dt, vel

    def target_token(self, pos: tf.Tensor, vel: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """[...] int32 token whose Verlet step from (pos, vel) lands nearest `target` [..., 2].

        The closed-loop encoding step: ground truth (`encode`) and an external planner's
        executed motion (the closed-loop stepper's AV) are turned into tokens by this one rule.
        """
        return self.quantize((target - pos - vel * self.dt) / (self.dt * self.dt))

    # ----------------------------------------------------------------- state
    def initial_state(self, xy, valid, logged_vel=None):
        """State at the current step from the log.

        Args:
          xy: [..., 91, 2] scene-frame positions; valid: [..., 91] bool.
          logged_vel: optional [..., 91, 2] scene-frame logged velocities (`Scene.agent_vel`).
        Returns:
          pos, vel: [..., 2]. vel is the mean velocity over the last token interval (the Verlet
          state the dynamics use). When the log has a hole there, the latest earlier valid step
          gives the mean velocity instead: starting a moving agent from rest would cost it
          seconds of clipped acceleration to catch up. When nothing earlier is valid (an agent
          first seen at the current step), the logged velocity at the current step if given
          (a car entering the scene at 12 m/s otherwise starts from rest and lags the log by
          ~9 m), else zero.
        """
        xy = tf.convert_to_tensor(xy, tf.float32)
        valid = tf.convert_to_tensor(valid, tf.bool)
        pos = xy[..., _CUR, :]
        # Candidate earlier steps, preferred first: one token interval back, then nearest.
        prev_steps = [_CUR - self.steps_per_token] + [
            j for j in range(_CUR - 1, -1, -1) if j != _CUR - self.steps_per_token
        ]
        if logged_vel is None:
            vel = tf.zeros_like(pos)
        else:
            vel = tf.convert_to_tensor(logged_vel, tf.float32)[..., _CUR, :]
            vel = tf.where(valid[..., _CUR, None], vel, tf.zeros_like(vel))
        for j in reversed(prev_steps):  # later assignments win, so iterate least preferred first
            ok = (valid[..., j] & valid[..., _CUR])[..., None]
            vel = tf.where(ok, (pos - xy[..., j, :]) / ((_CUR - j) / _STEP_HZ), vel)
        return pos, vel

    # ---------------------------------------------------------------- encode
    def _gap_filled_targets(self, xy, valid):
        """Log positions at every token target step, linearly interpolated over log gaps.

        Returns targets [..., T, 2], has_target [..., T] (a later valid step exists, so the agent
        is only temporarily missing), is_logged [..., T] (the log itself is valid there).
        """
        steps = tf.range(datatypes.NUM_STEPS)
        idx = tf.where(valid, steps, -1)
        # Previous / next valid index for every step, via a masked max/min over a [S, S] triangle.
        lower = steps[None, :] <= steps[:, None]  # [t, t'] : t' <= t
        prev_idx = tf.reduce_max(tf.where(lower, idx[..., None, :], -1), axis=-1)
        big = datatypes.NUM_STEPS
        idx_next = tf.where(valid, steps, big)
        next_idx = tf.reduce_min(
            tf.where(~lower | tf.eye(big, dtype=tf.bool), idx_next[..., None, :], big), axis=-1
        )
        target_steps = _CUR + self.steps_per_token * tf.range(1, self.num_tokens + 1)
        prev_t = tf.gather(prev_idx, target_steps, axis=-1)
        next_t = tf.gather(next_idx, target_steps, axis=-1)
        has_prev = prev_t >= 0
        has_next = next_t < big
        p0 = tf.gather(xy, tf.maximum(prev_t, 0), axis=-2, batch_dims=len(xy.shape) - 2)
        p1 = tf.gather(xy, tf.minimum(next_t, big - 1), axis=-2, batch_dims=len(xy.shape) - 2)
        span = tf.cast(tf.maximum(next_t - prev_t, 1), xy.dtype)
        w = tf.cast(target_steps - prev_t, xy.dtype) / span
        interp = p0 + (p1 - p0) * w[..., None]
        is_logged = tf.gather(valid, target_steps, axis=-1)
        targets = tf.where(is_logged[..., None], tf.gather(xy, target_steps, axis=-2), interp)
        targets = tf.where((has_prev | is_logged)[..., None], targets, p1)
        return targets, is_logged | (has_prev & has_next), is_logged

    def encode(self, xy, valid, logged_vel=None):
        """Closed-loop ground-truth tokens.

        Args:
          xy: [..., 91, 2] scene-frame log positions; valid: [..., 91] bool log validity.
          logged_vel: optional [..., 91, 2] logged velocities (see `initial_state`).
        Returns:
          tokens: [..., T] int32; token_valid: [..., T] bool, True where the log is valid at the
            token's target step and the agent exists at the current step (loss mask).
        """
        xy = tf.convert_to_tensor(xy, tf.float32)
        valid = tf.convert_to_tensor(valid, tf.bool)
        targets, has_target, is_logged = self._gap_filled_targets(xy, valid)
        pos, vel = self.initial_state(xy, valid, logged_vel)
        tokens = []
        for k in range(self.num_tokens):
            tok = tf.where(
                has_target[..., k], self.target_token(pos, vel, targets[..., k, :]), self.zero_token
            )
            pos, vel = self.step(pos, vel, tok)
            tokens.append(tok)
        tokens = tf.stack(tokens, axis=-1)
        token_valid = is_logged & valid[..., _CUR, None]
        return tokens, token_valid

    # ---------------------------------------------------------------- decode
    def decode_knots(self, tokens, pos, vel):
        """Tokens [..., T] from state ([..., 2], [..., 2]) -> knots [..., T+1, 2], vels [..., T+1, 2]."""
        knots, vels = [pos], [vel]
        for k in range(self.num_tokens):
            pos, vel = self.step(pos, vel, tokens[..., k])
            knots.append(pos)
            vels.append(vel)
        return tf.stack(knots, axis=-2), tf.stack(vels, axis=-2)

    def upsample(self, knots, vels):
        """Token-rate knots -> 10 Hz positions [..., 80, 2] (steps 11..90).

        Cubic Hermite per interval. vels[k] is the mean velocity over the interval ending at knot
        k, so the tangent at a knot is the mean of the incoming and outgoing interval velocities
        (the last knot uses its incoming one): C1 and exact at the knots.
        """
        s = self.steps_per_token
        if s == 1:
            return knots[..., 1:, :]
        outgoing = tf.concat([vels[..., 1:, :], vels[..., -1:, :]], axis=-2)
        tangents = 0.5 * (vels + outgoing)
        f = tf.range(1, s + 1, dtype=knots.dtype) / s  # [s]
        h00 = 2 * f**3 - 3 * f**2 + 1
        h10 = f**3 - 2 * f**2 + f
        h01 = -2 * f**3 + 3 * f**2
        h11 = f**3 - f**2
        p0, p1 = knots[..., :-1, None, :], knots[..., 1:, None, :]  # [..., T, 1, 2]
        m0, m1 = tangents[..., :-1, None, :] * self.dt, tangents[..., 1:, None, :] * self.dt
        c = lambda h: h[:, None]  # [s, 1] broadcast against [..., T, s, 2]
        xy = c(h00) * p0 + c(h10) * m0 + c(h01) * p1 + c(h11) * m1
        shape = tf.concat([tf.shape(xy)[:-3], [self.num_tokens * s, 2]], axis=0)
        return tf.reshape(xy, shape)

    def headings(self, xy_10hz, pos0, heading0):
        """Yaw [..., 80] from 10 Hz motion, starting at pos0 [..., 2] with yaw heading0 [...].

        The yaw follows the direction of each 0.1 s displacement and is held while the agent
        moves less than still_distance (a parked car's jitter must not spin it around).
        """
        prev = tf.concat([pos0[..., None, :], xy_10hz[..., :-1, :]], axis=-2)
        d = xy_10hz - prev
        moving = tf.norm(d, axis=-1) > self.still_distance
        motion_yaw = tf.atan2(d[..., 1], d[..., 0])
        heading = tf.convert_to_tensor(heading0, xy_10hz.dtype)
        out = []
        for t in range(xy_10hz.shape[-2]):
            heading = tf.where(moving[..., t], motion_yaw[..., t], heading)
            out.append(heading)
        return tf.stack(out, axis=-1)

    def decode(self, tokens, pos, vel, heading0):
        """Tokens + current state -> (xy [..., 80, 2], heading [..., 80]) at 10 Hz, scene frame."""
        knots, vels = self.decode_knots(tokens, pos, vel)
        xy = self.upsample(knots, vels)
        return xy, self.headings(xy, pos, heading0)

    # ------------------------------------------------------------ evaluation
    def reconstruction_error(self, xy, valid, logged_vel=None):
        """Error of tokenised ground truth decoded back to 10 Hz, vs the log.

        `logged_vel` ([..., 91, 2], optional): see `initial_state`.

        Returns err [..., 80] (m) and mask [..., 80] (valid log future of agents valid now).
        """
        xy = tf.convert_to_tensor(xy, tf.float32)
        valid = tf.convert_to_tensor(valid, tf.bool)
        tokens, _ = self.encode(xy, valid, logged_vel)
        pos, vel = self.initial_state(xy, valid, logged_vel)
        knots, vels = self.decode_knots(tokens, pos, vel)
        rec = self.upsample(knots, vels)
        err = tf.norm(rec - xy[..., _CUR + 1 :, :], axis=-1)
        mask = valid[..., _CUR + 1 :] & valid[..., _CUR, None]
        return tf.where(mask, err, tf.zeros_like(err)), mask
