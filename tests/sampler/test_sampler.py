"""Sampler: compiled rollouts on the real WOMD scene with the tiny model, and a fake model."""

import numpy as np
import tensorflow as tf

from motion_sim.data import frames
from motion_sim.models.decode_cache import DecodeCache
from motion_sim.sampler import Sampler, filter_logits
from motion_sim.tokenizer import ActionTokenizer
from tests.fixtures.policy import tiny_model, womd_scene
from tests.fixtures.testcase import TestCase

A = 6


class _HugeLogitModel:
    """Fake policy whose step t puts a huge logit on token (7 * t + agent) % 169."""

    vocab_size, max_steps = 169, 80

    def encode(self, scene):
        return tf.zeros([1]), tf.zeros([1])

    def init_cache(self, scene, num_rollouts, num_steps, encoding=None):
        mask = tf.repeat(tf.cast(scene["agent_mask"], tf.bool), num_rollouts, axis=0)
        return DecodeCache((), (), tf.zeros([1]), mask)

    def next(self, tokens_prev, cache, step):
        want = (7 * step + tf.range(tf.shape(tokens_prev)[1])) % 169
        logits = 1e4 * tf.one_hot(want, 169)
        return tf.broadcast_to(logits, tf.concat([tf.shape(tokens_prev), [169]], 0)), cache


class SamplerTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = tiny_model()
        cls.tokenizer = ActionTokenizer(2)
        cls.scene = womd_scene(num_agents=A, batch=2)
        cls.scene["agent_mask"][1, 4:] = False  # second scene has two padded agents
        cls.sampler = Sampler(cls.model, cls.tokenizer, num_rollouts=3)

    def test_shapes_log_probs_and_decoding(self):
        out = self.sampler(self.scene, seed=1)
        self.assertEqual(out.tokens.shape, (2, 3, A, 16))
        self.assertEqual(out.xy.shape, (2, 3, A, 80, 2))
        self.assertEqual(out.world_heading.shape, (2, 3, A, 80))
        # log_probs are the policy's own log-probabilities of the sampled tokens.
        for b in range(2):
            for r in range(3):
                sub = {k: v[b : b + 1] for k, v in self.scene.items()}
                want = self.model.log_probs(sub, out.tokens[b, r][None])[0]
                mask = self.scene["agent_mask"][b]
                self.assertAllClose(
                    tf.boolean_mask(out.log_probs[b, r], mask),
                    tf.boolean_mask(want, mask),
                    atol=1e-4,
                )
        # Padded agents: zero-acceleration token, no probability, no motion.
        self.assertAllEqual(out.tokens[1, :, 4:], tf.fill([3, 2, 16], self.tokenizer.zero_token))
        self.assertAllEqual(out.log_probs[1, :, 4:], tf.zeros([3, 2, 16]))
        self.assertAllEqual(out.xy[1, :, 4:], tf.zeros([3, 2, 80, 2]))
        # Trajectories are the tokenizer's decoding of the tokens from the logged state.
        pos, vel = self.tokenizer.initial_state(
            self.scene["agent_xy"][0], self.scene["agent_valid"][0]
        )
        xy, heading = self.tokenizer.decode(
            out.tokens[0, 2], pos, vel, self.scene["agent_heading"][0, :, 10]
        )
        self.assertAllClose(out.xy[0, 2], xy, atol=1e-4)
        self.assertAllClose(out.heading[0, 2], heading, atol=1e-4)
        # World frame agrees with the scene builder's float64 inverse.
        sub = {k: v[0] for k, v in self.scene.items()}
        wxy, wh = frames.to_world(
            out.xy[0].numpy().astype(np.float64), out.heading[0].numpy().astype(np.float64), sub
        )
        self.assertAllClose(out.world_xy[0], wxy, atol=1e-3)
        dh = np.angle(np.exp(1j * (out.world_heading[0].numpy() - wh)))
        self.assertLess(np.abs(dh).max(), 1e-4)

    def test_seeds(self):
        a = self.sampler(self.scene, seed=5)
        b = self.sampler(self.scene, seed=5)
        c = self.sampler(self.scene, seed=6)
        self.assertAllEqual(a.tokens, b.tokens)
        self.assertAllEqual(a.xy, b.xy)
        self.assertNotAllEqual(a.tokens, c.tokens)
        # Rollouts of one scene differ from each other (independent draws per row).
        self.assertNotAllEqual(a.tokens[0, 0], a.tokens[0, 1])

    def test_no_retrace(self):
        sampler = Sampler(self.model, self.tokenizer, num_rollouts=2)
        sampler(self.scene, seed=1)
        forced = tf.zeros([2, A, 16], tf.int32)
        sampler(
            self.scene,
            seed=tf.constant([3, 4]),
            forced_tokens=forced,
            forced_mask=tf.zeros([2, A, 16], tf.bool),
        )
        sampler(self.scene, seed=9)
        self.assertEqual(sampler.trace_count, 1)

    def test_forced_tokens_are_reproduced(self):
        logged, valid = self.tokenizer.encode(self.scene["agent_xy"], self.scene["agent_valid"])
        forced_mask = np.zeros([2, A, 16], bool)
        forced_mask[:, 0] = True  # replay the SDC, the others react
        forced_mask[:, 2, :5] = True
        out = self.sampler(self.scene, 11, forced_tokens=logged, forced_mask=forced_mask)
        for r in range(3):
            self.assertAllEqual(out.tokens[0, r, 0], logged[0, 0])
            self.assertAllEqual(out.tokens[0, r, 2, :5], logged[0, 2, :5])
        everything = self.sampler(
            self.scene,
            12,
            forced_tokens=logged,
            forced_mask=np.broadcast_to(self.scene["agent_mask"][:, :, None], [2, A, 16]),
        )
        self.assertAllEqual(everything.tokens[0, 1], logged[0])
        want = self.model.log_probs({k: v[:1] for k, v in self.scene.items()}, logged[:1])
        self.assertAllClose(everything.log_probs[0, 0], want[0], atol=1e-4)

    def test_top_k_1_is_greedy(self):
        greedy = Sampler(self.model, self.tokenizer, num_rollouts=2, top_k=1)
        a = greedy(self.scene, 1)
        b = greedy(self.scene, 2)
        self.assertAllEqual(a.tokens, b.tokens)
        logits = self.model.teacher_forced_logits(
            {k: v[:1] for k, v in self.scene.items()}, a.tokens[0, 0][None]
        )
        self.assertAllEqual(a.tokens[0, 0], tf.argmax(logits[0], axis=-1, output_type=tf.int32))

    def test_fake_model_tokens_land_at_their_step(self):
        sampler = Sampler(
            _HugeLogitModel(), self.tokenizer, num_rollouts=2, temperature=0.7, top_p=0.9
        )
        out = sampler(self.scene, 3)
        t = np.arange(16)[None, :]
        a = np.arange(A)[:, None]
        want = (7 * t + a) % 169
        self.assertAllEqual(out.tokens[0, 1], want)
        self.assertAllEqual(out.tokens[1, 0, :4], want[:4])

    def test_filter_logits(self):
        logits = tf.math.log(tf.constant([[0.5, 0.05, 0.3, 0.15]]))
        kept = lambda x: (x.numpy() > -1e8)[0].tolist()
        self.assertEqual(kept(filter_logits(logits, top_k=2)), [True, False, True, False])
        self.assertEqual(kept(filter_logits(logits, top_p=0.5)), [True, False, False, False])
        self.assertEqual(kept(filter_logits(logits, top_p=0.7)), [True, False, True, False])
        self.assertEqual(kept(filter_logits(logits, top_p=0.81)), [True, False, True, True])
        self.assertEqual(kept(filter_logits(logits)), [True] * 4)

    def test_temperature_sampling_matches_policy(self):
        """Empirical token frequencies at one step follow softmax(logits / temperature)."""
        logits = tf.constant([[[2.0, 1.0, 0.0] + [-30.0] * 166]])

        class OneStep(_HugeLogitModel):
            def next(self, tokens_prev, cache, step):
                return tf.broadcast_to(logits, tf.concat([tf.shape(tokens_prev), [169]], 0)), cache

        sampler = Sampler(OneStep(), self.tokenizer, num_rollouts=64, temperature=2.0)
        scene = womd_scene(num_agents=8)
        out = sampler(scene, 0).tokens.numpy()[0][:, scene["agent_mask"][0]]
        freq = np.bincount(out.ravel(), minlength=3)[:3] / out.size
        want = tf.nn.softmax(logits[0, 0, :3] / 2.0).numpy()
        np.testing.assert_allclose(freq, want, atol=0.03)

    def test_mixed_precision_rollout(self):
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
        sampler = Sampler(tiny_model(), self.tokenizer, num_rollouts=2)
        out = sampler(self.scene, 0)
        self.assertEqual(out.log_probs.dtype, tf.float32)
        self.assertTrue(np.all(np.isfinite(out.log_probs.numpy())))
        self.assertTrue(np.all(np.isfinite(out.world_xy.numpy())))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "together"):
            self.sampler(self.scene, 0, forced_tokens=np.zeros([2, A, 16], np.int32))
        with self.assertRaisesRegex(ValueError, "top_p"):
            Sampler(self.model, self.tokenizer, top_p=0.0)
        with self.assertRaisesRegex(ValueError, "max_steps"):
            Sampler(tiny_model(max_steps=16), ActionTokenizer(10))


if __name__ == "__main__":
    tf.test.main()


class ClosedLoopStepTest(TestCase):
    """`Sampler.start` / `step`: the rollout's own step function, driven from outside."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = tiny_model()
        cls.tokenizer = ActionTokenizer(2)
        cls.scene = womd_scene(num_agents=A, batch=2)
        cls.scene["agent_mask"][1, 4:] = False

    def _step_all(self, sampler, forced, forced_mask, seed):
        """Runs T steps with forced [B, R, A, T] -> tokens, log_probs [B, R, A, T]."""
        state, tok, lp = sampler.start(self.scene, seed, forced[..., 0], forced_mask[..., 0])
        tokens, log_probs = [tok], [lp]
        for t in range(1, self.tokenizer.num_tokens):
            self.assertEqual(int(state.step), t)
            state, tok, lp = sampler.step(state, forced[..., t], forced_mask[..., t])
            tokens.append(tok)
            log_probs.append(lp)
        return tf.stack(tokens, -1), tf.stack(log_probs, -1)

    def test_stepping_with_logged_av_equals_sampler_with_forced_tokens(self):
        R = 3
        sampler = Sampler(self.model, self.tokenizer, num_rollouts=R)
        logged, _ = self.tokenizer.encode(self.scene["agent_xy"], self.scene["agent_valid"])
        forced_mask = np.zeros([2, A, 16], bool)
        forced_mask[:, 0] = True  # the AV (SDC) replays its logged tokens, the others react
        want = sampler(self.scene, 7, forced_tokens=logged, forced_mask=forced_mask)
        tile = lambda x: np.repeat(np.asarray(x)[:, None], R, axis=1)
        tokens, log_probs = self._step_all(sampler, tile(logged), tile(forced_mask), 7)
        self.assertAllEqual(tokens, want.tokens)
        self.assertAllClose(log_probs, want.log_probs, atol=1e-5)
        self.assertAllEqual(tokens[:, :, 0], tile(logged)[:, :, 0])
        # The other agents really are sampled (not all forced / not all equal across worlds).
        self.assertNotAllEqual(tokens[0, 0, 1], tokens[0, 1, 1])
        # Second pass with another R: one more trace each, none for a repeated shape.
        before = sampler.step_trace_count
        self._step_all(sampler, tile(logged), tile(forced_mask), 8)
        self.assertEqual(sampler.step_trace_count, before)
        self.assertEqual(sampler.trace_count, 1)

    def test_each_world_gets_its_own_forced_token(self):
        sampler = Sampler(self.model, self.tokenizer, num_rollouts=1)
        forced = np.zeros([2, 4, A], np.int32)
        forced[:, :, 0] = np.arange(4) * 10  # world r's AV token is 10 r
        mask = np.zeros([2, 4, A], bool)
        mask[:, :, 0] = True
        state, tok, _ = sampler.start(self.scene, 1, forced, mask)
        self.assertAllEqual(tok[:, :, 0], forced[:, :, 0])
        state, tok, _ = sampler.step(state, forced + 1, mask)
        self.assertAllEqual(tok[:, :, 0], forced[:, :, 0] + 1)
        self.assertAllEqual(state.prev_tokens.shape, [8, A])
