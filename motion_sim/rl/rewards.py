"""Per-agent, per-token-step rewards of simulated rollouts (paper Eq. 2).

    r_t^i = -|| pos_t^i - gt_t^i ||_2  (only where the log is valid)  -  lambda * collision_t^i

Rewards are at *token rate* (one per action, T = 16 at 2 Hz), because REINFORCE credits actions:
  * displacement: the decoded 10 Hz position at the end of the token's interval (the token knot,
    where the Verlet state is exact) against the log at the same 10 Hz step; zero where the log
    is invalid there (the agent is still simulated, we just cannot score its position);
  * collision: 1 if the agent's oriented box overlaps any other simulated agent's box at *any*
    10 Hz step inside the token's interval (checking only the knots would miss a pass-through in
    the 0.5 s between them).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

import gin
from motion_sim.data import datatypes
from motion_sim.rl import collision

_CUR = datatypes.CURRENT_INDEX


class Rewards(NamedTuple):
    """Attributes ([..., A, T] float32 unless noted; `...` = batch, rollouts):
    reward: total reward per agent and token step.
    displacement: ||pos - gt|| (m), 0 where the log is invalid.
    displacement_valid: [..., A, T] bool, log valid at the knot (ADE mask).
    collision: 1.0 where the agent overlaps another agent during the interval.
    valid: [..., A, T] bool, agent-steps that take part in the loss (real agents).
    """

    reward: tf.Tensor
    displacement: tf.Tensor
    displacement_valid: tf.Tensor
    collision: tf.Tensor
    valid: tf.Tensor


@gin.configurable
class RewardFunction:
    """Args:
    collision_weight: lambda in Eq. 2 (metres of displacement one collision step is worth).
    displacement_weight: scale of the displacement term (1.0 in the paper).
    """

    def __init__(self, collision_weight: float = 1.0, displacement_weight: float = 1.0):
        self.collision_weight = float(collision_weight)
        self.displacement_weight = float(displacement_weight)

    def __call__(self, xy, heading, scene, steps_per_token: int) -> Rewards:
        """Rewards of rollouts.

        Args:
          xy: [B, R, A, 80, 2] simulated scene-frame positions at 10 Hz (steps 11..90).
          heading: [B, R, A, 80] simulated yaw.
          scene: batched `Scene` (dict or NamedTuple) with agent_xy [B, A, 91, 2], agent_valid
            [B, A, 91], agent_mask [B, A], agent_size [B, A, 3].
          steps_per_token: 10 Hz steps per action token (5 at 2 Hz).
        """
        get = datatypes.scene_fields(scene).__getitem__
        num_steps = xy.shape[-2]
        num_tokens = num_steps // steps_per_token
        knots = slice(steps_per_token - 1, None, steps_per_token)
        gt_xy = get("agent_xy")[:, None, :, _CUR + 1 :, :]  # [B, 1, A, 80, 2]
        gt_valid = get("agent_valid")[:, None, :, _CUR + 1 :]  # [B, 1, A, 80]
        agent_mask = get("agent_mask")[:, None, :]  # [B, 1, A]
        disp = tf.norm(xy[..., knots, :] - gt_xy[..., knots, :], axis=-1)  # [B, R, A, T]
        disp_valid = tf.broadcast_to(gt_valid[..., knots] & agent_mask[..., None], tf.shape(disp))
        disp = tf.where(disp_valid, disp, tf.zeros_like(disp))

        size = get("agent_size")[:, None, :, :]  # [B, 1, A, 3]
        # Time-major map keeps memory at one [B, R, A, A] overlap matrix per step.
        xy_t = tf.transpose(xy, [3, 0, 1, 2, 4])  # [80, B, R, A, 2]
        hd_t = tf.transpose(heading, [3, 0, 1, 2])
        valid = tf.broadcast_to(agent_mask, tf.shape(heading)[:-1])
        hit_t = tf.map_fn(
            lambda a: tf.cast(
                collision.any_collision(a[0], a[1], size[..., 0], size[..., 1], valid), tf.float32
            ),
            (xy_t, hd_t),
            fn_output_signature=tf.float32,
        )  # [80, B, R, A]
        hit = tf.transpose(hit_t, [1, 2, 3, 0])  # [B, R, A, 80]
        shape = tf.concat([tf.shape(hit)[:-1], [num_tokens, steps_per_token]], 0)
        coll = tf.reduce_max(tf.reshape(hit, shape), axis=-1)  # [B, R, A, T]

        step_valid = tf.broadcast_to(agent_mask[..., None], tf.shape(coll))
        reward = -self.displacement_weight * disp - self.collision_weight * coll
        reward = tf.where(step_valid, reward, tf.zeros_like(reward))
        return Rewards(
            reward=reward,
            displacement=disp,
            displacement_valid=disp_valid,
            collision=coll,
            valid=step_valid,
        )
