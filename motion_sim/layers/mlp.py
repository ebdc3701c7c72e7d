"""A plain Dense stack (hidden layers with an activation, linear output)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class MLP(tf.keras.layers.Layer):
    """Dense(units[0], act) -> ... -> Dense(units[-1]) (linear last layer).

    Args:
      units: widths of every layer, the last is the output width.
      activation: hidden activation.
    """

    def __init__(self, units: Sequence[int], activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.units = [int(u) for u in units]
        self.activation = activation
        self.dense_layers = [
            tf.keras.layers.Dense(
                u, activation=activation if i < len(self.units) - 1 else None, name=f"dense_{i}"
            )
            for i, u in enumerate(self.units)
        ]

    def call(self, x):
        for layer in self.dense_layers:
            x = layer(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=self.activation)
        return config
