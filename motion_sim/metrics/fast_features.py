"""XLA-compilable WOSAC metric features of a scenario's log and rollouts (all samples at once).

Same maths as the official `trajectory_features` (`kinematics` here), `interaction_features`
(`fast_interaction`), `map_metric_features` and `traffic_light_features` (`fast_map_features`):
float32, same formulas, same tie-breaking, restructured so it compiles with static shapes:
evaluated agents are the first E rows (looped over) instead of `tf.where(mask)` gathers, and the
nearest road-edge / object searches are pruned exactly (`pruned_search`). Whatever a pruned
search cannot settle is searched again, then brute-forced, inside the same call: the work is
bounded by the input size and no input needs another compiled shape.

Only the 80 simulated steps are computed: every feature here is per step, and the official code
slices the 11 history steps away afterwards.

Tensors are compared with `tf.equal`, never `==`: inside a `tf.function`, `Tensor.__eq__` is
elementwise only while TF believes the outermost context is eager. When TensorFlow is first
imported after absl's `app.run` has parsed flags, TF 2.13's `distribute/combinations.py` runs an
`absl.app.call_after_init` callback mid-import that creates the eager context before TF2
behaviour is enabled; that context's context-switch stack lacks the eager entry, so traced
`a == b` silently returns the Python bool `a is b` (False) and the road-edge argmin found no
segment (wrong off-road rate and road-edge likelihood).
"""

from __future__ import annotations

import tensorflow as tf
from waymo_open_dataset.wdl_limited.sim_agents_metrics import trajectory_features

from motion_sim.metrics import scenario_arrays
from motion_sim.metrics.fast_interaction import (
    distance_to_nearest_object,
    object_boxes,
    time_to_collision,
    ttc_frame,
)
from motion_sim.metrics.fast_map_features import distance_to_road_edge, red_light_violation

CURRENT = scenario_arrays.CURRENT  # 10
STEP_SECONDS = 0.1


def kinematics(x, y, z, heading, dt, dt2):
    """Official `trajectory_features.compute_kinematic_features`, XLA-safe.

    `dt` and `dt2` (= float32(0.1 ** 2), as the official Python-float maths gives) are passed
    as tensors: with them as constants XLA rewrites the divisions (e.g. into multiplications by
    reciprocals), which changes float32 rounding -- enough to move values that sit exactly on a
    histogram edge (constant-velocity rollouts have zero acceleration, an edge of the 2023 bins).
    """
    dpos = trajectory_features.central_diff(tf.stack([x, y, z], axis=0), pad_value=float("nan"))
    speed = tf.norm(dpos, axis=0) / dt
    accel = trajectory_features.central_diff(speed, pad_value=float("nan")) / dt
    wrap = trajectory_features._wrap_angle  # pylint: disable=protected-access
    dh_step = wrap(trajectory_features.central_diff(heading, pad_value=float("nan")) * 2) / 2
    d2h_step = wrap(trajectory_features.central_diff(dh_step, pad_value=float("nan")) * 2) / 2
    return speed, accel, dh_step / dt, d2h_step / dt2


def _fold_steps_time_major(x):
    """[S, A, T, ...] -> [S * T, A, ...]: samples one after the other on the step axis."""
    x = tf.experimental.numpy.swapaxes(x, 1, 2)
    return tf.reshape(x, [-1] + x.shape[2:].as_list())


def _unfold_steps(x, num_samples):
    """[E, S * T] -> [S, E, T]."""
    x = tf.reshape(x, [x.shape[0], num_samples, -1])
    return tf.transpose(x, [1, 0, 2])


def map_and_interaction_features(xyzh, valid, speed, size, num_eval, eval_slots, tables):
    """Per-step object, collision-time, road-edge and red-light features of all samples at once.

    Every feature is independent per step (object distance, time to collision) or per evaluated
    agent (map searches), so the samples are folded into the step / row axis: one set of large
    ops instead of a loop of small ones per sample (op count, not arithmetic, bounded the
    per-sample loop on CPU). The evaluated agents are a `tf.while_loop` of `num_eval`
    iterations over the first rows, so the compiled shape holds `eval_slots` of them without
    paying for the empty ones.

    Args:
      xyzh: [S, A, 91, 4] float32 samples (the log and the rollouts).
      valid: [S, A, 91] bool.
      speed: [S, A, 91] float32 `kinematics` speed with z = 0 (official time-to-collision input).
      size: [A, 3].
      num_eval: [] int32 E <= eval_slots, evaluated agents (rows 0..E-1).
      eval_slots: static number of evaluated-agent rows of the outputs.
      tables: dict of the scenario's road-edge / lane / light tensors.

    Returns:
      dict of [S, eval_slots, 80] features (rows >= E are zero) and `fallbacks`: [] int32 steps
      whose pruned search was settled by the brute-force fallback.
    """
    num_samples, _, num_steps, _ = xyzh.shape
    num_future = num_steps - CURRENT - 1
    future, future_valid = xyzh[:, :, CURRENT + 1 :], valid[:, :, CURRENT + 1 :]
    # Time-major [S * T, A] (sample-major steps) for the per-step searches over all agents.
    steps_valid = _fold_steps_time_major(future_valid)
    folded = _fold_steps_time_major(future)  # [S * T, A, 4]
    heading = folded[..., 3]
    cos, sin = tf.cos(heading), tf.sin(heading)
    boxes = object_boxes(folded[..., :2], cos, sin, steps_valid, size)
    frame = ttc_frame(
        folded[..., :2],
        heading,
        cos,
        sin,
        _fold_steps_time_major(speed[:, :, CURRENT + 1 :]),
        steps_valid,
        size,
    )
    row_size = tf.tile(size[tf.newaxis], [num_samples, 1, 1])

    def body(e, nearest, ttc, edge, red, fallbacks):
        near_e, near_fallbacks = distance_to_nearest_object(e, boxes)
        ttc_e = time_to_collision(e, frame)
        rows = tf.gather(xyzh, e, axis=1)  # [S, 91, 4]
        edge_e, edge_fallbacks = distance_to_road_edge(
            rows[:, CURRENT:],
            tf.gather(valid, e, axis=1)[:, CURRENT:],
            tf.gather(row_size, e, axis=1),
            num_samples,
            tables,
            num_samples,
        )
        red_e = red_light_violation(
            rows[..., :2], tf.gather(future_valid, e, axis=1), num_samples, tables
        )
        put = lambda buffer, value: tf.tensor_scatter_nd_update(buffer, [[e]], value[tf.newaxis])
        return (
            e + 1,
            put(nearest, near_e),
            put(ttc, ttc_e),
            put(edge, edge_e),
            put(red, red_e),
            fallbacks + near_fallbacks + edge_fallbacks,
        )

    steps = num_samples * num_future
    init = (
        tf.constant(0),
        tf.zeros([eval_slots, steps]),
        tf.zeros([eval_slots, steps]),
        tf.zeros([eval_slots, num_samples, num_future]),
        tf.zeros([eval_slots, num_samples, num_future], tf.bool),
        tf.constant(0),
    )
    _, nearest, ttc, edge, red, fallbacks = tf.while_loop(lambda e, *_: e < num_eval, body, init)
    return dict(
        distance_to_nearest_object=_unfold_steps(nearest, num_samples),
        time_to_collision=_unfold_steps(ttc, num_samples),
        distance_to_road_edge=tf.transpose(edge, [1, 0, 2]),
        traffic_light_violation=tf.transpose(red, [1, 0, 2]),
        fallbacks=fallbacks,
    )
