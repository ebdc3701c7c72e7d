"""WayformerSceneEncoder and its token layers on the real WOMD scene: per-step tokens, history
only, padding ignored, latent queries, and a past light state that the default encoder ignores."""

import numpy as np
import tensorflow as tf

from motion_sim.layers.agent_step_encoder import AgentStepEncoder
from motion_sim.layers.latent_query_block import LatentQueryBlock
from motion_sim.layers.masks import key_padding_bias
from motion_sim.layers.traffic_light_history_encoder import TrafficLightHistoryEncoder
from motion_sim.models.inputs import scene_inputs
from motion_sim.models.scene_encoder import SceneEncoder
from motion_sim.models.wayformer_encoder import WayformerSceneEncoder
from tests.fixtures.policy import womd_scene
from tests.fixtures.testcase import TestCase

_ENC = dict(hidden=16, num_layers=1, num_heads=2, ffn_dim=32, mlp_width=16)


def _scene(num_agents=6):
    return scene_inputs(womd_scene(num_agents))


def _with_past_light_change(scene):
    """The scene with every valid light's state at step 5 changed (the current step kept)."""
    state = scene["tl_state"].numpy().copy()
    state[:, 5] = (state[:, 5] + 1) % 9
    return dict(scene, tl_state=tf.constant(state))


class WayformerEncoderTest(TestCase):
    def test_agent_step_tokens(self):
        scene = _scene()
        tokens, mask = self.run_layer_test(AgentStepEncoder, dict(hidden=16, mlp_width=8), (scene,))
        self.assertEqual(tokens.shape, (1, 6 * 11, 16))
        want = (
            scene["agent_valid"].numpy()[:, :, :11] & scene["agent_mask"].numpy()[:, :, None]
        ).reshape(1, 66)
        np.testing.assert_array_equal(mask.numpy(), want)
        self.assertAllEqual(
            tf.boolean_mask(tokens, ~mask), tf.zeros_like(tf.boolean_mask(tokens, ~mask))
        )
        # Step t of agent a is token a * 11 + t: moving agent 1 at step 3 changes that token only.
        layer = AgentStepEncoder(hidden=16, mlp_width=8)
        base, _ = layer(scene)
        xy = scene["agent_xy"].numpy().copy()
        xy[:, 1, 3] += 5.0
        moved, _ = layer(dict(scene, agent_xy=tf.constant(xy)))
        changed = np.where(np.abs((moved - base).numpy()).max(-1)[0] > 1e-6)[0]
        self.assertEqual(list(changed), [1 * 11 + 3] if want[0, 14] else [])

    def test_traffic_light_history_tokens(self):
        scene = _scene()
        tokens, mask = self.run_layer_test(
            TrafficLightHistoryEncoder, dict(hidden=16, mlp_width=8), (scene,)
        )
        num_lights = scene["tl_valid"].shape[-1]
        self.assertEqual(tokens.shape, (1, 11 * num_lights, 16))
        np.testing.assert_array_equal(
            mask.numpy(), scene["tl_valid"].numpy()[:, :11].reshape(1, -1)
        )
        layer = TrafficLightHistoryEncoder(hidden=16, mlp_width=8)
        base, _ = layer(scene)
        self.assertNotAllClose(base, layer(_with_past_light_change(scene))[0])

    def test_latent_query_block_ignores_padded_tokens(self):
        tokens = tf.random.stateless_normal([2, 7, 16], [1, 2])
        mask = tf.constant([[True] * 7, [True] * 4 + [False] * 3])
        out = self.run_layer_test(
            LatentQueryBlock,
            dict(num_latents=5, num_heads=2, key_dim=8, ffn_dim=32),
            (tokens, key_padding_bias(mask)),
        )
        self.assertEqual(out.shape, (2, 5, 16))
        block = LatentQueryBlock(num_latents=5, num_heads=2, key_dim=8, ffn_dim=32)
        base = block(tokens, key_padding_bias(mask))
        garbage = tf.where(mask[..., None], tokens, 1e3)
        self.assertAllClose(base, block(garbage, key_padding_bias(mask)), atol=1e-5)

    def test_encoder_reads_history_only_and_past_lights(self):
        scene = _scene()
        emb, mask = self.run_layer_test(WayformerSceneEncoder, dict(_ENC, num_latents=8), (scene,))
        self.assertEqual(emb.shape, (1, 8, 16))
        self.assertTrue(bool(tf.reduce_all(mask)))
        tf.keras.utils.set_random_seed(0)
        encoder = WayformerSceneEncoder(**_ENC, num_latents=8)
        base, _ = encoder(scene)
        future = dict(
            scene,
            agent_xy=tf.concat(
                [scene["agent_xy"][:, :, :11], scene["agent_xy"][:, :, 11:] + 50.0], axis=2
            ),
        )
        self.assertAllClose(base, encoder(future)[0])  # no future leak
        self.assertNotAllClose(base, encoder(_with_past_light_change(scene))[0])
        # The default encoder reads the current light state only: blind to the same change.
        default = SceneEncoder(**_ENC)
        self.assertAllClose(default(scene)[0], default(_with_past_light_change(scene))[0])

    def test_padded_agents_do_not_change_the_latents(self):
        scene = _scene()
        encoder = WayformerSceneEncoder(**_ENC, num_latents=8)
        padded = {k: v.numpy().copy() for k, v in scene.items()}
        padded["agent_mask"][:, 4:] = False
        padded = {k: tf.constant(v) for k, v in padded.items()}
        base, _ = encoder(padded)
        xy = padded["agent_xy"].numpy().copy()
        xy[:, 4:] += 30.0
        self.assertAllClose(base, encoder(dict(padded, agent_xy=tf.constant(xy)))[0], atol=1e-5)
