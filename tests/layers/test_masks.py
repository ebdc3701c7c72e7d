import numpy as np
import tensorflow as tf

from motion_sim.layers import masks
from tests.fixtures.testcase import TestCase


class MasksTest(TestCase):
    def test_block_causal_structure(self):
        T, A = 3, 2
        m = masks.block_causal_mask(T, A).numpy()
        for q in range(T * A):
            for k in range(T * A):
                # p = t * A + a: visible iff key step <= query step (same step included).
                self.assertEqual(m[q, k], k // A <= q // A, (q, k))

    def test_padded_agents_masked_as_keys_at_every_step(self):
        agent_mask = tf.constant([[True, False, True]])
        bias = masks.block_causal_bias(agent_mask, 2).numpy()[0, 0]  # [6, 6]
        self.assertTrue(np.all(bias[:, [1, 4]] == masks.MASK_VALUE))
        self.assertEqual(bias[5, 0], 0.0)  # step 1 agent 2 sees step 0 agent 0
        self.assertEqual(bias[0, 3], masks.MASK_VALUE)  # step 0 never sees step 1

    def test_chunk_biases_are_blocks_of_the_full_bias(self):
        agent_mask = tf.constant([[True, False, True], [True, True, False]])
        T, A = 7, 3
        full = masks.block_causal_bias(agent_mask, T).numpy()
        for num_chunks, steps in ((1, [7]), (3, [2, 3, 2]), (4, [2, 2, 1, 2]), (9, [1] * 7)):
            chunks = masks.block_causal_chunk_biases(agent_mask, T, num_chunks)
            self.assertEqual([c.shape[-2] // A for c in chunks], steps)
            start = 0
            for c in chunks:
                rows, cols = c.shape[-2], c.shape[-1]
                self.assertEqual(cols, start + rows)
                self.assertAllEqual(c.numpy(), full[:, :, start:cols, :cols])
                # Every key beyond the chunk is masked for its queries in the full bias.
                self.assertTrue(np.all(full[:, :, start:cols, cols:] == masks.MASK_VALUE))
                start = cols

    def test_all_masked_row_is_finite(self):
        bias = masks.key_padding_bias(tf.zeros([1, 4], tf.bool))
        probs = tf.nn.softmax(tf.random.normal([1, 1, 2, 4]) + bias)
        self.assertTrue(np.all(np.isfinite(probs.numpy())))


if __name__ == "__main__":
    tf.test.main()
