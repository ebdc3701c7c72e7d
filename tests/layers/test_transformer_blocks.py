"""EncoderBlock and DecoderBlock (teacher-forced pass == cached steps)."""
import numpy as np
import tensorflow as tf

from motion_sim.layers import masks
from motion_sim.layers.decoder_block import DecoderBlock
from motion_sim.layers.encoder_block import EncoderBlock
from tests.test_case import TestCase


class TransformerBlocksTest(TestCase):

    def test_encoder_block(self):
        x = tf.random.stateless_normal([2, 6, 16], [1, 1])
        bias = masks.key_padding_bias(tf.constant([[True] * 6, [True] * 4 + [False] * 2]))
        out = self.run_layer_test(EncoderBlock, dict(num_heads=2, key_dim=8, ffn_dim=32),
                                  (x, bias))
        self.assertEqual(out.shape, x.shape)

    def test_decoder_block_full_equals_cached(self):
        B, T, A, N, D, H = 2, 3, 4, 5, 16, 2
        agent_mask = tf.constant([[True, True, False, True], [True, False, True, True]])
        scene_mask = tf.constant([[True] * 5, [True, True, False, True, False]])
        x = tf.random.stateless_normal([B, T * A, D], [5, 6])
        scene = tf.random.stateless_normal([B, N, D], [7, 8])
        args = (x, masks.block_causal_bias(agent_mask, T), scene,
                masks.key_padding_bias(scene_mask))
        full = self.run_layer_test(DecoderBlock, dict(num_heads=H, key_dim=D // H, ffn_dim=32),
                                   args)
        block = DecoderBlock(num_heads=H, key_dim=D // H, ffn_dim=32)
        full = block(*args)
        cache = tf.zeros([B, 2, H, T, A, D // H])
        scene_kv = block.scene_kv(scene)
        xs = tf.reshape(x, [B, T, A, D])
        for t in range(T):
            y, cache = block.step(xs[:, t], t, cache, masks.cached_step_bias(agent_mask, T, t),
                                  scene_kv, masks.key_padding_bias(scene_mask))
            self.assertAllClose(y, tf.reshape(full, [B, T, A, D])[:, t], atol=1e-5)
        # The cache holds this step's keys at slot t and nothing was written past T.
        self.assertTrue(np.all(np.abs(cache.numpy()).sum(axis=(0, 1, 2, 4, 5)) > 0))


if __name__ == "__main__":
    tf.test.main()
