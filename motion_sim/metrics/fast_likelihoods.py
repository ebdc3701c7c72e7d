"""Vectorised versions of the official `estimators` and the scenario-level aggregation.

Matches `estimators.histogram_estimate` / `bernoulli_estimate` bin for bin: samples are clipped
to [min, max], bins come from the same float32 `tf.linspace` edges with searchsorted-right
semantics, NaN (central-difference padding of the last steps) lands in the last bin as in
`tfp.stats.histogram`, and the categorical is the smoothed counts normalised.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf
from waymo_open_dataset.protos import sim_agents_metrics_pb2

from motion_sim.metrics import fast_interaction, fast_map_features

TIME_SERIES_FEATURES = (
    "linear_speed",
    "linear_acceleration",
    "angular_speed",
    "angular_acceleration",
    "distance_to_nearest_object",
    "time_to_collision",
    "distance_to_road_edge",
)
BOOLEAN_FEATURES = ("collision_indication", "offroad_indication", "traffic_light_violation")


class Histogram(NamedTuple):
    """Static (hashable) description of one feature's estimator.

    Attributes:
      edges: tuple of num_bins + 1 float32 edges, exactly as the official code builds them.
      min_val, max_val: clip range (float32 values).
      pseudocount: additive smoothing.
      independent_timesteps: pool all steps of an object into one distribution.
    """

    edges: tuple
    min_val: float
    max_val: float
    pseudocount: float
    independent_timesteps: bool


def estimator_of(
    feature: sim_agents_metrics_pb2.SimAgentMetricsConfig.FeatureConfig, name: str
) -> Histogram:
    """Converts a `FeatureConfig` into a `Histogram`; Bernoulli = 2 bins over [-0.5, 1.5]."""
    if feature.aggregate_objects:
        raise ValueError(
            f"{name}: aggregate_objects (scenario-gen) is not supported by the "
            "fast backend; use --backend=official"
        )
    kind = feature.WhichOneof("estimator")
    if kind == "histogram":
        h = feature.histogram
        lo, hi, bins, pc = h.min_val, h.max_val, h.num_bins, h.additive_smoothing_pseudocount
    elif kind == "bernoulli":
        lo, hi, bins, pc = -0.5, 1.5, 2, feature.bernoulli.additive_smoothing_pseudocount
    else:
        raise ValueError(f"{name}: estimator {kind!r} is not supported by the fast backend")
    edges = tf.cast(tf.linspace(lo, hi, bins + 1), tf.float32).numpy()
    return Histogram(
        tuple(float(e) for e in edges),
        float(np.float32(lo)),
        float(np.float32(hi)),
        float(np.float32(pc)),
        bool(feature.independent_timesteps),
    )


def _bins(values, h: Histogram):
    edges = tf.constant(h.edges, tf.float32)
    num_bins = len(h.edges) - 1
    # NaN is tested before clipping: XLA's clamp does not promise to propagate it.
    is_nan = tf.math.is_nan(values)
    x = tf.clip_by_value(tf.where(is_nan, 0.0, values), h.min_val, h.max_val)
    count = tf.reduce_sum(tf.cast(x[..., tf.newaxis] >= edges, tf.int32), axis=-1)
    bins = tf.clip_by_value(count - 1, 0, num_bins - 1)
    return tf.where(is_nan, num_bins - 1, bins), num_bins


def log_likelihood(log_values, sim_values, h: Histogram):
    """Log-likelihood of log_values [E, T] under the sim_values [R, E, T] histograms -> [E, T]."""
    log_bins, num_bins = _bins(tf.cast(log_values, tf.float32), h)
    sim_onehot = tf.one_hot(_bins(tf.cast(sim_values, tf.float32), h)[0], num_bins)  # [R,E,T,B]
    if h.independent_timesteps:
        counts = tf.reduce_sum(sim_onehot, axis=[0, 2])[:, tf.newaxis]  # [E, 1, B]
    else:
        counts = tf.reduce_sum(sim_onehot, axis=0)  # [E, T, B]
    probs = counts + h.pseudocount
    log_probs = tf.math.log(probs) - tf.math.log(tf.reduce_sum(probs, axis=-1, keepdims=True))
    log_probs = tf.broadcast_to(log_probs, log_values.shape.as_list() + [num_bins])
    return tf.gather(log_probs, log_bins, batch_dims=2)


def _central_and(valid):
    pad = tf.zeros_like(valid[..., :1])
    return tf.concat([pad, valid[..., 2:] & valid[..., :-2], pad], axis=-1)


def _masked_mean(values, mask):
    return tf.reduce_sum(tf.where(mask, values, tf.zeros_like(values))) / tf.reduce_sum(
        tf.cast(mask, tf.float32)
    )


def scenario_scores(log, sim, log_valid, is_vehicle, eval_mask, estimators: dict):
    """Official `compute_scenario_metrics_for_features_bundle`, minus the meta-metric.

    Args:
      log: dict of [E, T] log features; sim: dict of [R, E, T] rollout features (+ 'ade': [R, E]).
      log_valid: [E, T] bool logged validity of the simulated steps.
      is_vehicle: [E] bool.
      eval_mask: [E] bool, row holds an evaluated agent (rows past them are padding).
      estimators: feature name -> `Histogram`.

    Returns:
      dict of scalar tensors named like the `SimAgentMetrics` fields (no metametric).
    """
    log_valid = log_valid & eval_mask[:, tf.newaxis]
    row_mask = eval_mask[:, tf.newaxis]  # [E, 1]
    speed_valid = _central_and(log_valid)
    accel_valid = _central_and(speed_valid)
    ttc_valid = log_valid & is_vehicle[:, tf.newaxis]
    masks = dict(
        linear_speed=speed_valid,
        angular_speed=speed_valid,
        linear_acceleration=accel_valid,
        angular_acceleration=accel_valid,
        distance_to_nearest_object=log_valid,
        distance_to_road_edge=log_valid,
        time_to_collision=ttc_valid,
    )
    out = {}
    for name in TIME_SERIES_FEATURES:
        ll = log_likelihood(log[name], sim[name], estimators[name])
        out[name + "_likelihood"] = tf.exp(_masked_mean(ll, masks[name]))

    def any_over_time(per_step, mask):
        return tf.reduce_any(per_step & mask, axis=-1)

    indications = dict(
        collision_indication=(
            log["distance_to_nearest_object"] < fast_interaction.COLLISION_THRESHOLD,
            sim["distance_to_nearest_object"] < fast_interaction.COLLISION_THRESHOLD,
            log_valid,
        ),
        offroad_indication=(
            log["distance_to_road_edge"] > fast_map_features.OFFROAD_THRESHOLD,
            sim["distance_to_road_edge"] > fast_map_features.OFFROAD_THRESHOLD,
            log_valid,
        ),
        traffic_light_violation=(
            log["traffic_light_violation"],
            sim["traffic_light_violation"],
            ttc_valid,
        ),
    )
    sim_any = {}
    for name, (log_steps, sim_steps, mask) in indications.items():
        log_any = any_over_time(log_steps, mask)
        sim_any[name] = any_over_time(sim_steps, mask)
        ll = log_likelihood(
            log_any[:, tf.newaxis], sim_any[name][..., tf.newaxis], estimators[name]
        )
        out[name + "_likelihood"] = tf.exp(_masked_mean(ll, row_mask))
    num_rollouts = sim["ade"].shape[0]
    rollout_mask = tf.broadcast_to(eval_mask[tf.newaxis], [num_rollouts, eval_mask.shape[0]])
    rate = lambda b: _masked_mean(tf.cast(b, tf.float32), rollout_mask)
    out["simulated_collision_rate"] = rate(sim_any["collision_indication"])
    out["simulated_offroad_rate"] = rate(sim_any["offroad_indication"])
    # The official rate filters by log validity only (not by vehicle type, unlike the likelihood).
    out["simulated_traffic_light_violation_rate"] = rate(
        any_over_time(sim["traffic_light_violation"], log_valid)
    )
    ade = tf.where(rollout_mask, sim["ade"], 0.0)  # padding rows have no valid step: NaN
    out["average_displacement_error"] = _masked_mean(ade, rollout_mask)
    out["min_average_displacement_error"] = tf.reduce_min(
        tf.reduce_sum(ade, axis=1) / tf.reduce_sum(tf.cast(eval_mask, tf.float32))
    )
    return out
