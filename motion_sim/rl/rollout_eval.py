"""Closed-loop quality of a policy: collision rate and ADE of sampled rollouts.

The learning check of RL fine-tuning (docs/learning.md): collisions fall, ADE barely rises.
The command line for a checkpoint is `python -m motion_sim.closed_loop_eval`.
  collision_rate: fraction of (rollout, agent) pairs over ALL real agents of the scene
    (`agent_mask`: up to 128 per scene, parked and background agents included) whose oriented
    box (log length x width at the rollout's heading; `rl.collision`) overlaps another real
    agent's box at any 10 Hz step of the 8 s. This is the RL reward's collision, not WOSAC's
    metric: WOSAC scores only its evaluated agents, with its own box distance.
  collision_rate_evaluated: the same, counted only for WOSAC's evaluated agents (the SDC and
    tracks_to_predict), still colliding with any real agent -- the agent set of WOSAC's
    collision rate, with this module's box geometry.
  ade: mean 10 Hz displacement (m) from the log over valid log steps of real agents.
"""

from __future__ import annotations

import tensorflow as tf

from motion_sim.data import datatypes

_CUR = datatypes.CURRENT_INDEX


def rollout_metrics(rollout, scene) -> dict:
    """Sums over one batch as floats: 'collided' / 'agents' (every real agent), 'collided_evaluated'
    / 'evaluated' (the SDC and tracks_to_predict), 'disp_sum' / 'disp_count'."""
    from motion_sim.rl import collision

    mask = scene["agent_mask"][:, None, :]  # [B, 1, A]
    size = scene["agent_size"][:, None, :, :]
    xy_t = tf.transpose(rollout.xy, [3, 0, 1, 2, 4])
    hd_t = tf.transpose(rollout.heading, [3, 0, 1, 2])
    valid = tf.broadcast_to(mask, tf.shape(rollout.heading)[:-1])
    hit = tf.map_fn(
        lambda a: collision.any_collision(a[0], a[1], size[..., 0], size[..., 1], valid),
        (xy_t, hd_t),
        fn_output_signature=tf.bool,
    )  # [80, B, R, A]
    collided = tf.reduce_any(hit, axis=0) & valid
    # WOSAC's evaluated agents: the SDC and the tracks to predict (real agents only).
    num_agents = scene["agent_mask"].shape[-1]
    is_sdc = tf.range(num_agents)[None, :] == tf.cast(scene["sdc_index"], tf.int32)[:, None]
    evaluated = (tf.cast(scene["tracks_to_predict"], tf.bool) | is_sdc)[:, None, :] & valid
    gt = scene["agent_xy"][:, None, :, _CUR + 1 :, :]
    gt_valid = scene["agent_valid"][:, None, :, _CUR + 1 :] & mask[..., None]
    gt_valid = tf.broadcast_to(gt_valid, tf.shape(rollout.heading))
    disp = tf.norm(rollout.xy - gt, axis=-1)
    return {
        "collided": float(tf.reduce_sum(tf.cast(collided, tf.float32))),
        "agents": float(tf.reduce_sum(tf.cast(valid, tf.float32))),
        "collided_evaluated": float(tf.reduce_sum(tf.cast(collided & evaluated, tf.float32))),
        "evaluated": float(tf.reduce_sum(tf.cast(evaluated, tf.float32))),
        "disp_sum": float(tf.reduce_sum(tf.where(gt_valid, disp, 0.0))),
        "disp_count": float(tf.reduce_sum(tf.cast(gt_valid, tf.float32))),
    }


def evaluate(model, data: str, num_rollouts: int = 32, seed: int = 0, max_scenes: int = 0) -> dict:
    """Samples `num_rollouts` per scene of `data` (one pass) and returns the rates."""
    from motion_sim import sampler as sampler_lib
    from motion_sim.data import pipeline

    sampler = sampler_lib.Sampler(model, num_rollouts=num_rollouts)
    ds = pipeline.make_dataset(data, 1, shuffle=False, repeat=False)
    tot = {
        "collided": 0.0,
        "agents": 0.0,
        "collided_evaluated": 0.0,
        "evaluated": 0.0,
        "disp_sum": 0.0,
        "disp_count": 0.0,
    }
    scenes = 0
    for i, scene in enumerate(ds):
        if max_scenes and i >= max_scenes:
            break
        rollout = sampler(scene, tf.constant([seed, i], tf.int32))
        for k, v in rollout_metrics(rollout, scene).items():
            tot[k] += v
        scenes += 1
    return {
        "collision_rate": tot["collided"] / max(tot["agents"], 1.0),
        "collision_rate_evaluated": tot["collided_evaluated"] / max(tot["evaluated"], 1.0),
        "ade": tot["disp_sum"] / max(tot["disp_count"], 1.0),
        "scenes": scenes,
        "rollouts_per_scene": num_rollouts,
    }
