"""SimAgentModel on the real WOMD scene: cached == teacher-forced, causality, padding, config."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from motion_sim.models.sim_agent_model import SimAgentModel
from motion_sim.tokenizer import ActionTokenizer
from tests.fixtures.policy import model_from_gin, womd_scene
from tests.fixtures.testcase import TestCase


def _tokens(scene, token_hz):
    tokens, _ = ActionTokenizer(token_hz).encode(scene["agent_xy"], scene["agent_valid"])
    return tokens


class SimAgentModelTest(TestCase):
    """Every test runs on the default encoder and (subclass below) on the Wayformer one."""

    GIN = "model_tiny"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = cls.make_model()

    @classmethod
    def make_model(cls, **overrides):
        tf.keras.utils.set_random_seed(0)
        return model_from_gin(cls.GIN, **overrides)

    @parameterized.parameters(2, 10)
    def test_cached_steps_equal_teacher_forced(self, token_hz):
        scene = womd_scene(num_agents=6, batch=2)
        scene["agent_mask"][1, 4:] = False  # second scene: two padded agents
        tokens = _tokens(scene, token_hz)
        T = tokens.shape[-1]
        full = self.model.teacher_forced_logits(scene, tokens)
        self.assertEqual(full.shape, (2, 6, T, 169))
        self.assertEqual(full.dtype, tf.float32)
        cache = self.model.init_cache(scene, num_rollouts=1, num_steps=T)
        prev = tf.zeros([2, 6], tf.int32)
        worst = 0.0
        for t in range(T):
            logits, cache = self.model.next(prev, cache, t)
            worst = max(worst, float(tf.reduce_max(tf.abs(logits - full[:, :, t]))))
            prev = tokens[:, :, t]
        self.assertLessEqual(worst, 1e-4)
        # Non-vacuous: logits move with the step and the conditioning tokens.
        self.assertGreater(float(tf.reduce_max(tf.abs(full[:, :, 1] - full[:, :, -1]))), 1e-3)

    def test_cache_with_rollouts_matches_each_rollout(self):
        scene = womd_scene(num_agents=4, batch=2)
        tokens = _tokens(scene, 2)
        R = 3
        cache = self.model.init_cache(scene, num_rollouts=R, num_steps=16)
        # Rollout r of scene b (row b * R + r) gets tokens shifted by r: all rows differ.
        rows = tf.stack([(tokens[b] + r) % 169 for b in range(2) for r in range(R)])
        prev = tf.zeros([2 * R, 4], tf.int32)
        got = []
        for t in range(16):
            logits, cache = self.model.next(prev, cache, t)
            got.append(logits)
            prev = rows[:, :, t]
        got = tf.stack(got, axis=2)  # [B*R, A, T, V]
        for b in range(2):
            for r in range(R):
                sub = {k: v[b : b + 1] for k, v in scene.items()}
                want = self.model.teacher_forced_logits(sub, rows[b * R + r][None])
                self.assertAllClose(got[b * R + r], want[0], atol=1e-4)

    def test_causality(self):
        scene = womd_scene(num_agents=5)
        tokens = _tokens(scene, 2).numpy()
        base = self.model.teacher_forced_logits(scene, tokens).numpy()
        k = 7
        changed = tokens.copy()
        changed[0, 2, k] = (changed[0, 2, k] + 40) % 169
        out = self.model.teacher_forced_logits(scene, changed).numpy()
        np.testing.assert_allclose(out[:, :, : k + 1], base[:, :, : k + 1], atol=1e-6)
        self.assertGreater(np.abs(out[:, :, k + 1 :] - base[:, :, k + 1 :]).max(), 1e-4)

    def test_padded_agents_never_affect_valid_ones(self):
        scene = womd_scene(num_agents=6)
        scene["agent_mask"][0, 4:] = False
        tokens = _tokens(scene, 2).numpy()
        base = self.model.teacher_forced_logits(scene, tokens).numpy()
        other = {k: v.copy() for k, v in scene.items()}
        rng = np.random.default_rng(0)
        other["agent_xy"][0, 4:] = rng.normal(size=other["agent_xy"][0, 4:].shape) * 30
        other["agent_vel"][0, 4:] += 5.0
        other["agent_type"][0, 4:] = 2
        tokens2 = tokens.copy()
        tokens2[0, 4:] = rng.integers(0, 169, size=tokens2[0, 4:].shape)
        out = self.model.teacher_forced_logits(other, tokens2).numpy()
        np.testing.assert_allclose(out[0, :4], base[0, :4], atol=1e-5)
        # Making agent 3 valid again does change the others (the mask is what protects them).
        tokens3 = tokens.copy()
        tokens3[0, 3] = (tokens3[0, 3] + 50) % 169
        self.assertGreater(
            np.abs(
                self.model.teacher_forced_logits(scene, tokens3).numpy()[0, :3] - base[0, :3]
            ).max(),
            1e-4,
        )

    def test_log_probs(self):
        scene = womd_scene(num_agents=4)
        tokens = _tokens(scene, 2)
        logp = self.model.log_probs(scene, tokens).numpy()
        logits = self.model.teacher_forced_logits(scene, tokens).numpy()
        want = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        want = np.take_along_axis(want, tokens.numpy()[..., None], -1)[..., 0]
        np.testing.assert_allclose(logp, want, atol=1e-5)
        self.assertTrue(np.all(logp <= 0))

    def test_gradients_reach_every_weight(self):
        scene = womd_scene(num_agents=4)
        tokens = _tokens(scene, 2)
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(self.model.log_probs(scene, tokens, training=True))
        grads = tape.gradient(loss, self.model.trainable_variables)
        missing = [v.name for v, g in zip(self.model.trainable_variables, grads) if g is None]
        self.assertEqual(missing, [])

    def test_config_round_trip(self):
        config = self.model.get_config()
        clone = SimAgentModel.from_config(config)
        self.assertEqual(clone.get_config(), config)
        clone.set_weights(self.model.get_weights())
        scene = womd_scene(num_agents=3)
        tokens = _tokens(scene, 2)
        self.assertAllClose(
            clone.teacher_forced_logits(scene, tokens),
            self.model.teacher_forced_logits(scene, tokens),
        )

    def test_mixed_bfloat16(self):
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = self.make_model()
        scene = womd_scene(num_agents=4)
        tokens = _tokens(scene, 2)
        logits = model.teacher_forced_logits(scene, tokens)
        self.assertEqual(logits.dtype, tf.float32)
        self.assertEqual(model.encode(scene)[0].dtype, tf.bfloat16)
        self.assertTrue(np.all(np.isfinite(logits.numpy())))
        cache = model.init_cache(scene, 2, 16)
        self.assertEqual(cache.self_kv[0].dtype, tf.bfloat16)
        step_logits, _ = model.next(tf.zeros([2, 4], tf.int32), cache, 0)
        self.assertEqual(step_logits.dtype, tf.float32)
        # bf16 cached and teacher-forced agree to bf16 precision.
        self.assertAllClose(step_logits[0], logits[0, :, 0], atol=0.1)

    def test_parameter_counts(self):
        ten = model_from_gin("model_10m").count_params()
        one = model_from_gin("model_1m").count_params()
        self.assertBetween(ten, 10e6, 12e6)
        self.assertBetween(one, 0.8e6, 1.5e6)

    def test_rejects_too_many_steps(self):
        with self.assertRaisesRegex(ValueError, "max_steps"):
            self.make_model(max_steps=16).init_cache(womd_scene(2), 1, 80)


if __name__ == "__main__":
    tf.test.main()


class WayformerSimAgentModelTest(SimAgentModelTest):
    """The same checks with the paper's encoder (gin/model_tiny_wayformer.gin)."""

    GIN = "model_tiny_wayformer"

    def test_scene_embedding_is_the_latents(self):
        emb, mask = self.model.encode(womd_scene(num_agents=5, batch=2))
        self.assertEqual(emb.shape, (2, 16, 32))
        self.assertTrue(bool(tf.reduce_all(mask)))

    def test_parameter_counts(self):
        # Equal size to the default encoder's configs (within 2%), so the two compare fairly.
        for name in ("model_1m", "model_10m"):
            base = model_from_gin(name).count_params()
            wayformer = model_from_gin(f"{name}_wayformer")
            self.assertEqual(wayformer.get_config()["encoder"], "wayformer")
            self.assertBetween(wayformer.count_params() / base, 0.98, 1.02)
