"""Shared test base: `tf.test.TestCase` + parameterized, with a Keras layer check."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl.testing import parameterized


class TestCase(tf.test.TestCase, parameterized.TestCase):
    """Base for the project's TF tests."""

    def tearDown(self):
        # A test that switches to mixed precision must not leak it into the next one.
        tf.keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    def run_layer_test(self, layer_cls, init_kwargs: dict, call_args: tuple,
                       call_kwargs: dict | None = None, expected_num_weights: int | None = None):
        """Checks a layer: eager == traced call, config round trip gives the same outputs with
        the same weights, and (optionally) the trainable weight tensor count.

        Returns the eager outputs.
        """
        call_kwargs = call_kwargs or {}
        layer = layer_cls(**init_kwargs)
        eager = layer(*call_args, **call_kwargs)
        traced = tf.function(lambda *a: layer(*a, **call_kwargs))(*call_args)
        tf.nest.map_structure(lambda x, y: self.assertAllClose(x, y, atol=1e-5), eager, traced)

        config = layer.get_config()
        clone = layer_cls.from_config(config)
        self.assertEqual(clone.get_config(), config)
        clone(*call_args, **call_kwargs)  # build
        clone.set_weights(layer.get_weights())
        again = clone(*call_args, **call_kwargs)
        tf.nest.map_structure(lambda x, y: self.assertAllClose(x, y, atol=1e-6), eager, again)
        if expected_num_weights is not None:
            self.assertLen(layer.trainable_weights, expected_num_weights)
        for w in layer.trainable_weights:
            self.assertTrue(np.all(np.isfinite(w.numpy())), w.name)
        return eager
