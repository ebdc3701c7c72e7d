"""AgentHistoryEncoder, PolylineEncoder, TrafficLightEncoder on the real WOMD scene."""

import numpy as np
import tensorflow as tf

from motion_sim.layers.agent_history_encoder import AgentHistoryEncoder
from motion_sim.layers.polyline_encoder import PolylineEncoder
from motion_sim.layers.traffic_light_encoder import TrafficLightEncoder
from motion_sim.models.inputs import scene_inputs
from tests.fixtures.policy import womd_scene
from tests.fixtures.testcase import TestCase


def _scene(num_agents=8):
    return scene_inputs(womd_scene(num_agents))


class SceneTokenEncodersTest(TestCase):
    def test_agent_history_encoder_reads_history_only(self):
        scene = _scene()
        out = self.run_layer_test(
            AgentHistoryEncoder, dict(hidden=16, mlp_width=32), (scene,), expected_num_weights=6
        )
        self.assertEqual(out.shape, (1, 8, 16))
        layer = AgentHistoryEncoder(hidden=16, mlp_width=32)
        base = layer(scene)
        future = dict(
            scene,
            agent_xy=tf.concat(
                [scene["agent_xy"][:, :, :11], scene["agent_xy"][:, :, 11:] + 50.0], axis=2
            ),
        )
        self.assertAllClose(base, layer(future))  # no future leak
        past = dict(scene, agent_xy=scene["agent_xy"] + 1.0)
        self.assertNotAllClose(base, layer(past))

    def test_polyline_encoder_ignores_padding_points(self):
        scene = _scene()
        tokens, mask = self.run_layer_test(PolylineEncoder, dict(hidden=16, mlp_width=32), (scene,))
        self.assertEqual(tokens.shape, (1, 256, 16))
        np.testing.assert_array_equal(mask.numpy(), scene["map_type"].numpy() > 0)
        self.assertGreater(int(tf.reduce_sum(tf.cast(mask, tf.int32))), 100)
        layer = PolylineEncoder(hidden=16, mlp_width=32)
        base, _ = layer(scene)
        valid = scene["map_valid"][..., None]
        garbage = dict(scene, map_xy=tf.where(valid, scene["map_xy"], 77.0))
        self.assertAllClose(base, layer(garbage)[0], atol=1e-5)
        self.assertAllEqual(
            tf.boolean_mask(base, ~mask), tf.zeros_like(tf.boolean_mask(base, ~mask))
        )

    def test_traffic_light_encoder_current_step(self):
        scene = _scene()
        tokens, mask = self.run_layer_test(
            TrafficLightEncoder, dict(hidden=16, mlp_width=8), (scene,)
        )
        np.testing.assert_array_equal(mask.numpy(), scene["tl_valid"].numpy()[:, 10])
        self.assertGreater(int(tf.reduce_sum(tf.cast(mask, tf.int32))), 0)
        layer = TrafficLightEncoder(hidden=16, mlp_width=8)
        base, _ = layer(scene)
        state = scene["tl_state"].numpy().copy()
        state[:, 11:] = 0  # future states are not read
        self.assertAllClose(base, layer(dict(scene, tl_state=tf.constant(state)))[0])
        state[:, 10] = (state[:, 10] + 1) % 9
        changed, _ = layer(dict(scene, tl_state=tf.constant(state)))
        self.assertNotAllClose(tf.boolean_mask(base, mask), tf.boolean_mask(changed, mask))


if __name__ == "__main__":
    tf.test.main()
