import numpy as np
import tensorflow as tf

from motion_sim.layers import masks
from motion_sim.layers.attention import Attention
from tests.test_case import TestCase


class AttentionTest(TestCase):

    def test_layer(self):
        q = tf.random.stateless_normal([2, 5, 16], [1, 2])
        c = tf.random.stateless_normal([2, 7, 16], [3, 4])
        bias = masks.key_padding_bias(tf.constant([[True] * 7, [True] * 3 + [False] * 4]))
        out = self.run_layer_test(Attention, dict(num_heads=2, key_dim=8), (q, c, bias),
                                  expected_num_weights=4)
        self.assertEqual(out.shape, (2, 5, 16))

    def test_masked_keys_have_no_effect(self):
        layer = Attention(num_heads=2, key_dim=4)
        q = tf.random.stateless_normal([1, 3, 8], [1, 2])
        c = tf.random.stateless_normal([1, 6, 8], [3, 4])
        keep = tf.constant([[True, False, True, True, False, False]])
        bias = masks.key_padding_bias(keep)
        out = layer(q, c, bias)
        changed = tf.where(keep[..., None], c, 1e3 * tf.ones_like(c))  # garbage in masked keys
        self.assertAllClose(out, layer(q, changed, bias), atol=1e-6)
        # ...but unmasked keys do matter (the test above is not vacuous).
        self.assertNotAllClose(out, layer(q, c + 1.0, bias))

    def test_mixed_precision_softmax_in_float32(self):
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
        layer = Attention(num_heads=2, key_dim=4)
        x = tf.random.stateless_normal([1, 3, 8], [1, 2])
        out = layer(x, x, tf.zeros([1, 1, 1, 3]))
        self.assertEqual(out.dtype, tf.bfloat16)
        self.assertEqual(layer.trainable_weights[0].dtype, tf.float32)
        self.assertTrue(np.all(np.isfinite(tf.cast(out, tf.float32).numpy())))


if __name__ == "__main__":
    tf.test.main()
