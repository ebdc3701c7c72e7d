"""EncoderBlock and DecoderBlock (teacher-forced pass == cached steps)."""

import numpy as np
import tensorflow as tf

from motion_sim.layers import masks
from motion_sim.layers.attention import Attention, fold_keys, fold_values
from motion_sim.layers.decoder_block import DecoderBlock
from motion_sim.layers.encoder_block import EncoderBlock
from tests.fixtures.testcase import TestCase


class TransformerBlocksTest(TestCase):
    def test_encoder_block(self):
        x = tf.random.stateless_normal([2, 6, 16], [1, 1])
        bias = masks.key_padding_bias(tf.constant([[True] * 6, [True] * 4 + [False] * 2]))
        out = self.run_layer_test(EncoderBlock, dict(num_heads=2, key_dim=8, ffn_dim=32), (x, bias))
        self.assertEqual(out.shape, x.shape)

    def test_decoder_block_full_equals_cached(self):
        B, T, A, N, D, H = 2, 3, 4, 5, 16, 2
        agent_mask = tf.constant([[True, True, False, True], [True, False, True, True]])
        scene_mask = tf.constant([[True] * 5, [True, True, False, True, False]])
        x = tf.random.stateless_normal([B, T * A, D], [5, 6])
        scene = tf.random.stateless_normal([B, N, D], [7, 8])
        args = (
            x,
            masks.block_causal_bias(agent_mask, T),
            scene,
            masks.key_padding_bias(scene_mask),
        )
        full = self.run_layer_test(
            DecoderBlock, dict(num_heads=H, key_dim=D // H, ffn_dim=32), args
        )
        block = DecoderBlock(num_heads=H, key_dim=D // H, ffn_dim=32)
        full = block(*args)
        cache = block.empty_cache(B, T, A, tf.float32)
        scene_kv = block.scene_kv(scene, scene_mask)
        key_bias = masks.mask_to_bias(agent_mask)
        xs = tf.reshape(x, [B, T, A, D])
        for t in range(T):
            y, cache = block.step(xs[:, t], t, cache, key_bias, scene_kv)
            self.assertAllClose(y, tf.reshape(full, [B, T, A, D])[:, t], atol=1e-5)
        cache = cache.numpy()
        # Every slot was written: keys of valid agents unmasked, padded agents' keys masked,
        # every value carries its softmax-denominator 1.
        key_bias = cache[:, 0, :, :, :, -1]  # [B, H, T, A]
        expected = np.where(agent_mask.numpy(), 0.0, masks.MASK_VALUE)[:, None, None, :]
        np.testing.assert_array_equal(key_bias, np.broadcast_to(expected, key_bias.shape))
        np.testing.assert_array_equal(cache[:, 1, :, :, :, -1], 1.0)
        self.assertTrue(np.all(np.abs(cache[..., :-1]).sum(axis=(0, 1, 2, 4, 5)) > 0))

    def test_empty_cache_masks_every_slot(self):
        block = DecoderBlock(num_heads=2, key_dim=4, ffn_dim=8)
        cache = block.empty_cache(3, 5, 6, tf.float32).numpy()
        self.assertEqual(cache.shape, (3, 2, 2, 5, 6, 5))
        np.testing.assert_array_equal(cache[:, 0, ..., -1], masks.MASK_VALUE)
        np.testing.assert_array_equal(cache[..., :-1], 0.0)

    def test_attend_folded_equals_attend_heads(self):
        att = Attention(2, 8)
        att.build(tf.TensorShape([2, 3, 16]))
        q = tf.random.stateless_normal([2, 3, 2, 8], [1, 2])
        k = tf.random.stateless_normal([2, 2, 7, 8], [3, 4])
        v = tf.random.stateless_normal([2, 2, 7, 8], [5, 6])
        key_mask = tf.constant(
            [[True] * 5 + [False] * 2, [False, True, True, False, True, True, True]]
        )
        bias = masks.mask_to_bias(key_mask)
        expected = att.attend_heads(q, k, v, bias[:, None, None, :])
        got = att.attend_folded(q, fold_keys(k, bias), fold_values(v))
        self.assertAllClose(got, expected, atol=1e-6)
        # A masked key's value cannot leak in, whatever it holds.
        v_poisoned = tf.where(key_mask[:, None, :, None], v, 1e6)
        self.assertAllClose(
            att.attend_folded(q, fold_keys(k, bias), fold_values(v_poisoned)), expected, atol=1e-6
        )


if __name__ == "__main__":
    tf.test.main()
