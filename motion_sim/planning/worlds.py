"""The worlds a planner is judged in: log playback, constant velocity, a sim-agent model.

A world owns the other objects. Per token step t it shows the planner their state now
(`observe`), then learns where the AV went (`advance`); at the end it returns their 10 Hz
trajectories. Objects the scene does not hold (beyond the model's 128 agents, or appearing
after the current step) replay their log in every world.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from motion_sim.agents.constant_velocity import constant_velocity_trajectory
from motion_sim.data import datatypes
from motion_sim.planning.scene_context import SceneContext
from motion_sim.tokenizer import ActionTokenizer

_CUR = datatypes.CURRENT_INDEX
_STEPS_PER_TOKEN = 5  # 10 Hz steps per 2 Hz token step


class Observation(NamedTuple):
    """Other objects now ([W or 1, O, ...]).

    Attributes:
      xy: [., O, 2] float32; vel: [., O, 2]; heading: [., O]; valid: [., O] bool.
    """

    xy: np.ndarray
    vel: np.ndarray
    heading: np.ndarray
    valid: np.ndarray


class Trajectories(NamedTuple):
    """Other objects over the current step and the 80 simulated steps ([W or 1, O, 81, ...])."""

    xy: np.ndarray
    heading: np.ndarray
    valid: np.ndarray


class LogWorld:
    """Log playback (the ground truth): every other object follows its log."""

    name, reactive = "log", False

    def reset(self, ctx: SceneContext, num_worlds: int, seed) -> None:
        self.ctx = ctx

    def _log_at(self, step: int, rows=slice(None)) -> Observation:
        c = self.ctx
        return Observation(
            c.others_xy[None, rows, step],
            c.others_vel[None, rows, step],
            c.others_heading[None, rows, step],
            c.others_valid[None, rows, step],
        )

    def observe(self, t: int) -> Observation:
        return self._log_at(_CUR + _STEPS_PER_TOKEN * t)

    def advance(self, t: int, av_xy: np.ndarray) -> None:
        del t, av_xy  # the log does not react

    def trajectories(self) -> Trajectories:
        c = self.ctx
        return Trajectories(
            c.others_xy[None, :, _CUR:],
            c.others_heading[None, :, _CUR:],
            c.others_valid[None, :, _CUR:],
        )


class ConstantVelocityWorld(LogWorld):
    """Held objects keep their current velocity and heading (the constant-velocity baseline)."""

    name = "cv"

    def reset(self, ctx: SceneContext, num_worlds: int, seed) -> None:
        super().reset(ctx, num_worlds, seed)
        held = ctx.held_rows >= 0
        traj = constant_velocity_trajectory(
            tf.constant(ctx.others_xy[:, _CUR]),
            tf.zeros(len(held)),
            tf.constant(ctx.others_vel[:, _CUR]),
            tf.constant(ctx.others_heading[:, _CUR]),
        ).numpy()
        xy = ctx.others_xy[:, _CUR:].copy()
        heading = ctx.others_heading[:, _CUR:].copy()
        valid = ctx.others_valid[:, _CUR:].copy()
        xy[held, 1:] = traj[held, :, :2]
        heading[held, 1:] = traj[held, :, 3]
        valid[held] = True
        self._traj = Trajectories(xy[None], heading[None], valid[None])
        self._vel = np.where(
            held[:, None, None], ctx.others_vel[:, _CUR : _CUR + 1], ctx.others_vel[:, _CUR:]
        )

    def observe(self, t: int) -> Observation:
        s = _STEPS_PER_TOKEN * t
        x = self._traj
        return Observation(
            x.xy[:, :, s], self._vel[None, :, s], x.heading[:, :, s], x.valid[:, :, s]
        )

    def trajectories(self) -> Trajectories:
        return self._traj


class ModelWorld(LogWorld):
    """A sim-agent model: every held object reacts to the AV, W worlds batched.

    Args:
      name: label of the world.
      stepper: closed-loop step API -- `start(scene, seed, forced_tokens, forced_mask)` and
        `step(state, forced_tokens, forced_mask)`, forced [1, W, A], each returning
        (state, tokens [1, W, A], ...): `Sampler` in process or a SavedModel's signatures.
      tokenizer: the model's `ActionTokenizer` (turns the AV's executed motion into its token
        with the same closed-loop rule as the training ground truth, and tokens into motion).
    """

    reactive = True

    def __init__(self, name: str, stepper, tokenizer: ActionTokenizer):
        self.name, self.stepper, self.tokenizer = name, stepper, tokenizer

    def reset(self, ctx: SceneContext, num_worlds: int, seed) -> None:
        super().reset(ctx, num_worlds, seed)
        self.seed, self.num_worlds = seed, num_worlds
        scene = ctx.scene
        pos, vel = self.tokenizer.initial_state(scene["agent_xy"][0], scene["agent_valid"][0])
        tile = lambda x: np.repeat(x.numpy()[None], num_worlds, axis=0)  # noqa: E731
        self.pos, self.vel = tile(pos), tile(vel)  # [W, A, 2] Verlet state of every agent
        self.heading0 = np.asarray(scene["agent_heading"][0, :, _CUR], np.float32)
        self.heading = np.repeat(self.heading0[None], num_worlds, axis=0)
        self.knots, self.vels = [self.pos], [self.vel]
        self.state = None
        self.held = ctx.held_rows >= 0
        self.rows = ctx.held_rows[self.held]

    def observe(self, t: int) -> Observation:
        log = self._log_at(_CUR + _STEPS_PER_TOKEN * t)
        w = self.num_worlds
        xy = np.repeat(log.xy, w, 0)
        vel = np.repeat(log.vel, w, 0)
        heading = np.repeat(log.heading, w, 0)
        valid = np.repeat(log.valid, w, 0)
        xy[:, self.held] = self.pos[:, self.rows]
        vel[:, self.held] = self.vel[:, self.rows]
        heading[:, self.held] = self.heading[:, self.rows]
        valid[:, self.held] = True
        return Observation(xy, vel, heading, valid)

    def advance(self, t: int, av_xy: np.ndarray) -> None:
        """The AV reached av_xy [W, 2] at knot t + 1: its token, then the others' tokens."""
        tok = self.tokenizer
        av = self.ctx.av_row
        av_token = tok.target_token(
            tf.constant(self.pos[:, av]),
            tf.constant(self.vel[:, av]),
            tf.constant(av_xy, tf.float32),
        ).numpy()
        num_agents = self.pos.shape[1]
        forced = np.zeros([1, self.num_worlds, num_agents], np.int32)
        mask = np.zeros([1, self.num_worlds, num_agents], bool)
        forced[0, :, av], mask[0, :, av] = av_token, True
        if t == 0:
            out = self.stepper.start(self.ctx.scene, self.seed, forced, mask)
        else:
            out = self.stepper.step(self.state, forced, mask)
        self.state, tokens = out[0], np.asarray(out[1])[0]
        pos, vel = tok.step(tf.constant(self.pos), tf.constant(self.vel), tf.constant(tokens))
        self.pos, self.vel = pos.numpy(), vel.numpy()
        moving = np.linalg.norm(self.vel, axis=-1) * tok.dt > tok.still_distance
        self.heading = np.where(
            moving, np.arctan2(self.vel[..., 1], self.vel[..., 0]), self.heading
        ).astype(np.float32)
        self.knots.append(self.pos)
        self.vels.append(self.vel)

    def trajectories(self) -> Trajectories:
        tok = self.tokenizer
        knots = tf.constant(np.stack(self.knots, axis=-2))  # [W, A, T + 1, 2]
        vels = tf.constant(np.stack(self.vels, axis=-2))
        xy = tok.upsample(knots, vels)
        heading = tok.headings(xy, knots[..., 0, :], tf.constant(self.heading0)[None])
        log = super().trajectories()
        w = self.num_worlds
        out_xy = np.repeat(log.xy, w, 0)
        out_heading = np.repeat(log.heading, w, 0)
        out_valid = np.repeat(log.valid, w, 0)
        out_xy[:, self.held, 1:] = xy.numpy()[:, self.rows]
        out_heading[:, self.held, 1:] = heading.numpy()[:, self.rows]
        out_valid[:, self.held] = True
        return Trajectories(out_xy, out_heading, out_valid)
