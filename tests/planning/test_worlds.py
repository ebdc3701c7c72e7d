"""Worlds on a real scene: log playback, constant velocity, a model world's AV tokens."""

import numpy as np
import tensorflow as tf

from motion_sim.data import gpudrive_reader
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.scene_builder import build_scene
from motion_sim.metrics import scenario_arrays
from motion_sim.planning import reward as reward_lib
from motion_sim.planning import worlds
from motion_sim.planning.scene_context import OBJECT_BUCKET, build_context
from motion_sim.tokenizer import ActionTokenizer
from tests.fixtures import GPUDRIVE_FILE
from tests.fixtures.testcase import TestCase


class _RecordingStepper:
    """Fake closed-loop step API: every agent repeats the zero-acceleration token, except the
    forced ones; records what was forced."""

    def __init__(self, zero_token):
        self.zero, self.forced = zero_token, []

    def start(self, scene, seed, forced_tokens, forced_mask):
        return self.step(0, forced_tokens, forced_mask)

    def step(self, state, forced_tokens, forced_mask):
        self.forced.append((forced_tokens.copy(), forced_mask.copy()))
        tokens = np.where(forced_mask, forced_tokens, self.zero)
        return state + 1, tokens, np.zeros(tokens.shape, np.float32)


class WorldsTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        raw = gpudrive_reader.read_gpudrive_file(GPUDRIVE_FILE)
        scene, _ = build_scene(raw)
        arrays = scenario_arrays.scenario_arrays(to_scenario_proto(raw))
        cls.raw = raw
        cls.ctx = build_context(raw, scene, {k: getattr(arrays, k) for k in reward_lib.EDGE_FIELDS})

    def test_context(self):
        ctx, raw = self.ctx, self.raw
        self.assertEqual(ctx.others_xy.shape[0] % OBJECT_BUCKET, 0)
        self.assertAllClose(ctx.av_state[:3], [0.0, 0.0, 0.0], atol=1e-4)  # scene frame = SDC
        held = ctx.held_rows >= 0
        self.assertGreater(held.sum(), 0)
        # Held objects' log equals the scene's own rows.
        rows = ctx.held_rows[held]
        self.assertAllClose(
            ctx.others_xy[held][:, 10], ctx.scene["agent_xy"][0, rows, 10], atol=1e-3
        )
        self.assertNotIn(ctx.av_row, rows)
        real = int(np.sum([raw.valid[i, 10:].any() for i in range(len(raw.track_id))])) - 1
        self.assertEqual(int(ctx.others_valid[:, 10:].any(axis=1).sum()), real)

    def test_log_and_constant_velocity(self):
        log, cv = worlds.LogWorld(), worlds.ConstantVelocityWorld()
        log.reset(self.ctx, 3, None)
        cv.reset(self.ctx, 3, None)
        held = self.ctx.held_rows >= 0
        t = 4  # knot 4 = 10 Hz step 30
        self.assertAllClose(log.observe(t).xy[0], self.ctx.others_xy[:, 30])
        want = self.ctx.others_xy[held, 10] + 2.0 * self.ctx.others_vel[held, 10]
        self.assertAllClose(cv.observe(t).xy[0, held], want, atol=1e-4)
        self.assertAllClose(cv.observe(t).xy[0, ~held], self.ctx.others_xy[~held, 30])
        self.assertEqual(cv.trajectories().xy.shape[2], 81)

    def test_model_world_turns_the_av_motion_into_its_tokens(self):
        tok = ActionTokenizer(2)
        stepper = _RecordingStepper(tok.zero_token)
        world = worlds.ModelWorld("fake", stepper, tok)
        world.reset(self.ctx, 2, tf.constant([0, 0]))
        av = self.ctx.av_row
        # Executed motion within the token grid's reach: world 0 speeds up along x (1.3 m/s^2,
        # between bins), world 1 brakes (-0.4 m/s^2 across).
        accel = np.array([[1.3, 0.0], [0.0, -0.4]], np.float32)
        for t in range(tok.num_tokens):
            pos, vel = world.pos[:, av].copy(), world.vel[:, av].copy()
            target = pos + vel * tok.dt + accel * tok.dt**2
            world.advance(t, target)
            forced, mask = stepper.forced[-1]
            self.assertAllEqual(mask[0, :, av], [True, True])
            self.assertEqual(int(mask.sum()), 2)
            want = tok.target_token(tf.constant(pos), tf.constant(vel), tf.constant(target))
            self.assertAllEqual(forced[0, :, av], want)
            # The AV's token state follows its executed motion within half a grid bin.
            self.assertLessEqual(
                np.abs(world.pos[:, av] - target).max(), 0.5 * tok.bin_size * tok.dt**2 + 1e-5
            )
        obs = world.observe(3)  # any knot
        self.assertEqual(obs.xy.shape[0], 2)
        traj = world.trajectories()
        self.assertEqual(traj.xy.shape[:3], (2, self.ctx.others_xy.shape[0], 81))
