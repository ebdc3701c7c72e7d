"""`FastMetrics`: the WOSAC scenario metrics as one XLA-compiled TensorFlow function.

The official code loops in Python over the 32 rollouts and runs eager ops on zero-padded
polylines; here the log and all rollouts go through one `tf.function(jit_compile=True)` call
per scenario, compiled once per `scenario_arrays.ShapeBucket` (a fixed set of padded shapes).
Results equal the official backend within 1e-3 on every `SimAgentMetrics` field
(tests/metrics/test_fast_vs_official.py).
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from absl import logging
from waymo_open_dataset.protos import sim_agents_metrics_pb2, sim_agents_submission_pb2
from waymo_open_dataset.wdl_limited.sim_agents_metrics import metrics as official_metrics

from motion_sim.metrics import fast_features, fast_likelihoods, fast_map_features
from motion_sim.metrics import scenario_arrays as arrays_lib

_CURRENT = fast_features.CURRENT
_TABLE_KEYS = fast_map_features.EDGE_FIELDS + (
    "lane_start",
    "lane_end",
    "lane_valid",
    "lane_id",
    "tl_lane_id",
    "tl_red",
    "tl_seg_start",
    "tl_seg_dir",
    "tl_stop_t",
)


def _features(
    log_xyzh, log_valid, rollouts, agent_mask, size, tables, dt, dt2, num_eval, eval_slots: int
):
    """All metric features of the log (index 0) and the rollouts, config independent.

    Args:
      log_xyzh: [A, 91, 4] float32 logged x, y, z, heading; log_valid: [A, 91] bool.
      rollouts: [R, A, 80, 4] float32; agent_mask: [A] bool; size: [A, 3] float32.
      tables: the scenario's map tables; dt, dt2: [] step duration and its square (tensors, see
        `fast_features.kinematics`); num_eval: [] int32 E; eval_slots: static rows >= E.

    Returns:
      (dict of [1 + R, eval_slots, 80] features, [R, eval_slots] ADE, [] int32 fallbacks).
    """
    num_rollouts, num_agents, num_future, _ = rollouts.shape
    history = tf.broadcast_to(
        log_xyzh[tf.newaxis, :, : _CURRENT + 1], [num_rollouts, num_agents, _CURRENT + 1, 4]
    )
    xyzh = tf.concat([log_xyzh[tf.newaxis], tf.concat([history, rollouts], axis=2)], axis=0)
    # Rollouts are valid on every simulated step (official `joint_scene_to_trajectories`); the
    # log keeps its own validity. Padding agents are never valid.
    sim_valid = tf.concat(
        [
            log_valid[:, : _CURRENT + 1],
            tf.broadcast_to(agent_mask[:, tf.newaxis], [num_agents, num_future]),
        ],
        axis=1,
    )
    valid = tf.concat(
        [
            log_valid[tf.newaxis],
            tf.broadcast_to(
                sim_valid[tf.newaxis], [num_rollouts, num_agents, _CURRENT + 1 + num_future]
            ),
        ],
        axis=0,
    )

    x, y, z, heading = tf.unstack(xyzh, axis=-1)
    speed_2d = fast_features.kinematics(x, y, tf.zeros_like(z), heading, dt, dt2)[0]
    feats = fast_features.map_and_interaction_features(
        xyzh, valid, speed_2d, size, num_eval, eval_slots, tables
    )
    ev = xyzh[:, :eval_slots]
    kinematics = fast_features.kinematics(ev[..., 0], ev[..., 1], ev[..., 2], ev[..., 3], dt, dt2)
    for name, value in zip(
        ("linear_speed", "linear_acceleration", "angular_speed", "angular_acceleration"), kinematics
    ):
        feats[name] = value[..., _CURRENT + 1 :]
    # ADE over all 91 steps where the log is valid (history steps add zero error), as official.
    eval_valid = log_valid[:eval_slots]
    disp = tf.norm(ev[1:, ..., :3] - log_xyzh[tf.newaxis, :eval_slots, :, :3], axis=-1)
    ade = tf.reduce_sum(tf.where(eval_valid, disp, 0.0), axis=-1) / tf.reduce_sum(
        tf.cast(eval_valid, tf.float32), axis=-1
    )
    return feats, ade, feats.pop("fallbacks")


# Shared by every `FastMetrics`: features do not depend on the config, so one compilation per
# `scenario_arrays.ShapeBucket` serves all config years.
_compiled_features = tf.function(_features, jit_compile=True)


class FastMetrics:
    """Computes `SimAgentMetrics` for (scenario, rollouts) pairs with compiled calls.

    Every call is exact (the official numbers within 1e-3): pruned searches that cannot settle a
    step score it against every candidate inside the same compiled call, so there is no retry
    and no shape beyond the scenario's `ShapeBucket`.

    Attributes:
      config: the `SimAgentMetricsConfig` in use.
      fallbacks: scenarios where some pruned search needed its brute-force fallback.
      fallback_steps: (evaluated agent, sample, step) queries settled by that fallback, in all.
      seconds: wall time by part: `arrays` (protos -> padded arrays), `compile` (calls that
        traced a new shape, their one execution included), `features` (the other calls).
      compilations: calls that traced a new shape.
    """

    def __init__(
        self,
        config: sim_agents_metrics_pb2.SimAgentMetricsConfig,
        reuse_scene_arrays: bool = False,
    ):
        """`reuse_scene_arrays`: `metrics_from_protos` keeps the last scene's arrays for the next
        call on the same `Scenario` object (a report scores several methods' rollouts of one
        scene in a row, and the map tables are the costly part). Off by default: a caller that
        times repeated calls on one scene (benchmarks/metrics.py) must pay the conversion each
        time."""
        self.config = config
        self._reuse_scene_arrays = reuse_scene_arrays
        names = fast_likelihoods.TIME_SERIES_FEATURES + fast_likelihoods.BOOLEAN_FEATURES
        self._estimators = {n: fast_likelihoods.estimator_of(getattr(config, n), n) for n in names}
        self._compiled_scores = tf.function(self._scores, jit_compile=True)
        self.fallbacks = 0
        self.fallback_steps = 0
        self.compilations = 0
        self.seconds = {"arrays": 0.0, "compile": 0.0, "features": 0.0}
        self._last_arrays = (None, None)  # (Scenario, its ScenarioArrays) of the last call

    @staticmethod
    def num_traces() -> int:
        """Distinct shapes the feature function has been compiled for (in this process)."""
        return _compiled_features.experimental_get_tracing_count()

    def _scores(self, feats, ade, log_valid, is_vehicle, eval_mask):
        log = {k: v[0] for k, v in feats.items()}
        sim = {k: v[1:] for k, v in feats.items()}
        sim["ade"] = ade
        return fast_likelihoods.scenario_scores(
            log, sim, log_valid, is_vehicle, eval_mask, self._estimators
        )

    def _features_of(self, arrays: arrays_lib.ScenarioArrays, rollouts: np.ndarray):
        """(features, ADE, fallback steps) of one scene: config independent."""
        tables = {k: tf.constant(getattr(arrays, k)) for k in _TABLE_KEYS}
        log_xyzh = np.concatenate([arrays.xyz, arrays.heading[..., None]], axis=-1)
        return _compiled_features(
            tf.constant(log_xyzh),
            tf.constant(arrays.valid),
            tf.constant(rollouts),
            tf.constant(arrays.agent_mask),
            tf.constant(arrays.size),
            tables,
            tf.constant(fast_features.STEP_SECONDS, tf.float32),
            tf.constant(fast_features.STEP_SECONDS**2, tf.float32),
            tf.constant(arrays.num_eval, tf.int32),
            arrays.bucket.eval_slots,
        )

    def _values_of(self, arrays: arrays_lib.ScenarioArrays, feats, ade) -> dict:
        """This config's likelihoods and summary values of features from `_features_of`."""
        slots = arrays.bucket.eval_slots
        scores = self._compiled_scores(
            feats,
            ade,
            tf.constant(arrays.valid[:slots, _CURRENT + 1 :]),
            tf.constant(arrays.is_vehicle[:slots]),
            tf.constant(np.arange(slots) < arrays.num_eval),
        )
        return {k: float(v) for k, v in scores.items()}

    def _run(self, arrays: arrays_lib.ScenarioArrays, rollouts: np.ndarray):
        feats, ade, fallbacks = self._features_of(arrays, rollouts)
        return self._values_of(arrays, feats, ade), int(fallbacks)

    def _proto(self, arrays: arrays_lib.ScenarioArrays, values: dict):
        likelihoods = sim_agents_metrics_pb2.SimAgentMetrics(
            **{k: v for k, v in values.items() if k.endswith("_likelihood")}
        )
        return sim_agents_metrics_pb2.SimAgentMetrics(
            scenario_id=arrays.scenario_id,
            metametric=official_metrics._compute_metametric(self.config, likelihoods),  # pylint: disable=protected-access
            **values,
        )

    def _traces(self) -> int:
        return self.num_traces() + self._compiled_scores.experimental_get_tracing_count()

    def _account(self, arrays: arrays_lib.ScenarioArrays, traces: int, seconds: float, fallbacks):
        """Adds one call to `compilations` / `seconds` / `fallbacks`."""
        if self._traces() > traces:
            self.compilations += 1
            self.seconds["compile"] += seconds
        else:
            self.seconds["features"] += seconds
        if fallbacks:
            self.fallbacks += 1
            self.fallback_steps += fallbacks
            logging.info(
                "scenario %s: %d search steps settled by the exact fallback",
                arrays.scenario_id,
                fallbacks,
            )

    def scenario_metrics(
        self, arrays: arrays_lib.ScenarioArrays, rollouts: np.ndarray
    ) -> sim_agents_metrics_pb2.SimAgentMetrics:
        """Metrics of one scenario.

        Args:
          arrays: the scenario's `ScenarioArrays`.
          rollouts: [R, A, 80, 4] float32 from `scenario_arrays.rollout_arrays`.

        Returns:
          A `SimAgentMetrics` proto, meta-metric combined by the official helper.
        """
        return self.scenario_metrics_by_config(arrays, rollouts, ())[0]

    def scenario_metrics_by_config(
        self, arrays: arrays_lib.ScenarioArrays, rollouts: np.ndarray, others: tuple = ()
    ) -> list:
        """Metrics of one scenario under this config and each `FastMetrics` of `others`.

        The features (nearly all of the work) are computed once: they do not depend on the
        config; only the likelihoods and the meta-metric are per config.

        Returns:
          [this config's `SimAgentMetrics`] + one per `others`, in order.
        """
        if arrays.bucket not in arrays_lib.BUCKETS:
            logging.warning(
                "scenario %s is larger than every shape bucket: padded to %s (one more "
                "compilation)",
                arrays.scenario_id,
                arrays.bucket,
            )
        traces = self._traces()
        start = time.perf_counter()
        feats, ade, fallbacks = self._features_of(arrays, rollouts)
        values = self._values_of(arrays, feats, ade)
        self._account(arrays, traces, time.perf_counter() - start, int(fallbacks))
        out = [self._proto(arrays, values)]
        for other in others:
            traces = other._traces()  # pylint: disable=protected-access
            start = time.perf_counter()
            values = other._values_of(arrays, feats, ade)  # pylint: disable=protected-access
            other._account(arrays, traces, time.perf_counter() - start, 0)  # pylint: disable=protected-access
            out.append(other._proto(arrays, values))  # pylint: disable=protected-access
        return out

    def metrics_from_protos(
        self, scenario, rollouts: sim_agents_submission_pb2.ScenarioRollouts, source: str = ""
    ) -> sim_agents_metrics_pb2.SimAgentMetrics:
        """Metrics of validated protos; the conversion to arrays counts as `seconds['arrays']`.

        With `reuse_scene_arrays`, the same `scenario` object twice in a row reuses its arrays."""
        start = time.perf_counter()
        if not self._reuse_scene_arrays or self._last_arrays[0] is not scenario:
            self._last_arrays = (scenario, arrays_lib.scenario_arrays(scenario, source))
        arrays = self._last_arrays[1]
        rollout_array = arrays_lib.rollout_arrays(arrays, rollouts, source)
        self.seconds["arrays"] += time.perf_counter() - start
        return self.scenario_metrics(arrays, rollout_array)

    def bundle_metrics(
        self, scenario, rollouts: sim_agents_submission_pb2.ScenarioRollouts, source: str = ""
    ) -> sim_agents_metrics_pb2.SimAgentMetrics:
        """Convenience: metrics straight from the protos (validation included)."""
        from motion_sim.metrics import rollout_checks  # pylint: disable=import-outside-toplevel

        rollout_checks.validate_rollouts(rollouts, scenario, source)
        return self.metrics_from_protos(scenario, rollouts, source)
