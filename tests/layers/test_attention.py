import numpy as np
import tensorflow as tf

from motion_sim.layers import attention, masks
from motion_sim.layers.attention import Attention
from tests.fixtures.testcase import TestCase


class AttentionTest(TestCase):
    def test_layer(self):
        q = tf.random.stateless_normal([2, 5, 16], [1, 2])
        c = tf.random.stateless_normal([2, 7, 16], [3, 4])
        bias = masks.key_padding_bias(tf.constant([[True] * 7, [True] * 3 + [False] * 4]))
        out = self.run_layer_test(
            Attention, dict(num_heads=2, key_dim=8), (q, c, bias), expected_num_weights=2
        )
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

    def test_chunked_self_attention_equals_full(self):
        # Block-causal self-attention in query chunks (each over its visible key prefix) gives
        # the full pass's outputs and gradients: masked keys carry exactly zero weight.
        T, A = 5, 3
        layer = Attention(num_heads=2, key_dim=4)
        x = tf.random.stateless_normal([2, T * A, 8], [5, 6])
        agent_mask = tf.constant([[True, False, True], [True, True, True]])
        full_bias = masks.block_causal_bias(agent_mask, T)
        chunks = masks.block_causal_chunk_biases(agent_mask, T, 3)
        self.assertEqual([c.shape[-2:] for c in chunks], [(6, 6), (3, 9), (6, 15)])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            full = layer(x, x, full_bias)
            chunked = layer(x, x, chunks)
        self.assertAllClose(chunked, full, atol=1e-6)
        self.assertAllClose(tape.gradient(chunked, x), tape.gradient(full, x), atol=1e-5)
        self.assertAllClose(
            tape.gradient(chunked, layer.trainable_weights),
            tape.gradient(full, layer.trainable_weights),
            atol=1e-5,
        )

    def test_softmax_normalised_after_value_matmul(self):
        # attend_heads divides by the row sums after P.V: same as softmax(QK^T + bias) V.
        layer = Attention(num_heads=2, key_dim=4)
        q = tf.random.stateless_normal([1, 3, 2, 4], [1, 1]) * 10.0  # large scores
        k = tf.random.stateless_normal([1, 2, 6, 4], [2, 2])
        v = tf.random.stateless_normal([1, 2, 6, 4], [3, 3])
        bias = masks.key_padding_bias(tf.constant([[True, True, False, True, True, False]]))
        probs = tf.nn.softmax(tf.einsum("bqhd,bhkd->bhqk", q, k) + bias, axis=-1)
        expected = tf.einsum("bhqk,bhkd->bqhd", probs, v)
        self.assertAllClose(layer.attend_heads(q, k, v, bias), expected, atol=1e-5)

    def test_attention_dropout(self):
        tf.random.set_seed(3)
        layer = Attention(num_heads=1, key_dim=4, dropout=0.25)
        x = tf.random.stateless_normal([4, 64, 4], [1, 2])
        bias = tf.zeros([1, 1, 1, 64])
        self.assertAllClose(layer(x, x, bias, training=False), layer(x, x, bias))
        a, b = layer(x, x, bias, training=True), layer(x, x, bias, training=True)
        self.assertNotAllClose(a, b)  # fresh masks every call
        self.assertNotAllClose(a, layer(x, x, bias, training=False))
        keep, keep_prob = attention.dropout_keep_mask(tf.zeros([8, 100, 999]), 0.25)
        self.assertEqual(keep.shape, (8, 100, 999))
        self.assertEqual(keep_prob, 0.75)
        self.assertNear(float(tf.reduce_mean(tf.cast(keep, tf.float32))), 0.75, 0.005)
        # Unbiased: the kept weights are scaled by 1 / keep_prob (mean over many masks).
        mean = tf.add_n([layer(x, x, bias, training=True) for _ in range(200)]) / 200.0
        self.assertAllClose(mean, layer(x, x, bias, training=False), atol=0.1)

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
