"""PointNet-style encoder: one scene token per map polyline."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.layers import features
from motion_sim.layers.mlp import MLP


@tf.keras.utils.register_keras_serializable(package="motion_sim")
class PolylineEncoder(tf.keras.layers.Layer):
    """Map polylines [B, P, 20, 2] -> tokens [B, P, D] and mask [B, P].

    Point features (position, direction to the next point, valid) -> point MLP -> masked
    max-pool over the polyline -> concatenated back to every point (each point sees the whole
    polyline) -> second MLP -> masked max-pool -> + `MapType` embedding. Max-pooling makes the
    token independent of how many of the 20 points are valid.

    Args:
      hidden: output width D; mlp_width: hidden width of both MLPs; activation.
    Call:
      scene: dict with map_xy [B, P, L, 2], map_valid [B, P, L], map_type [B, P].
      Returns tokens [B, P, D] (zero for empty slots) and mask [B, P] (a polyline with a valid
      point and a non-PAD type).
    """

    def __init__(self, hidden: int, mlp_width: int, activation: str = "relu", **kwargs):
        # Raw scene inputs stay float32: autocasting positions of ~100 m to bfloat16 under
        # mixed precision would round them to ~0.5 m. The MLPs cast normalised features.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.hidden, self.mlp_width, self.activation = hidden, mlp_width, activation
        self.point_mlp = MLP([mlp_width, mlp_width], activation, name="point_mlp")
        self.polyline_mlp = MLP([mlp_width, hidden], activation, name="polyline_mlp")
        self.type_embedding = tf.keras.layers.Embedding(
            datatypes.NUM_MAP_TYPES, hidden, name="type_embedding"
        )

    def call(self, scene):
        xy = tf.cast(scene["map_xy"], tf.float32)
        valid = tf.cast(scene["map_valid"], tf.bool)
        nxt = tf.concat([xy[:, :, 1:], xy[:, :, -1:]], axis=2)
        nxt_valid = tf.concat([valid[:, :, 1:], tf.zeros_like(valid[:, :, -1:])], axis=2)
        # Direction only where both ends are real points (the last point has none).
        direction = tf.where((valid & nxt_valid)[..., None], nxt - xy, tf.zeros_like(xy))
        valid_f = tf.cast(valid, tf.float32)[..., None]
        point = tf.concat([xy / features.POSITION_SCALE * valid_f, direction, valid_f], axis=-1)
        h = self.point_mlp(point)  # [B, P, L, W]
        pooled = features.masked_max(h, valid, axis=2)  # [B, P, W]
        h = tf.concat([h, tf.broadcast_to(pooled[:, :, None], tf.shape(h))], axis=-1)
        token = features.masked_max(self.polyline_mlp(h), valid, axis=2)  # [B, P, D]
        map_type = tf.cast(scene["map_type"], tf.int32)
        mask = tf.reduce_any(valid, axis=-1) & (map_type != int(datatypes.MapType.PAD))
        token = token + self.type_embedding(map_type)
        return tf.where(mask[..., None], token, tf.zeros_like(token)), mask

    def get_config(self):
        config = super().get_config()
        config.update(hidden=self.hidden, mlp_width=self.mlp_width, activation=self.activation)
        return config
