"""Rewards (displacement at token knots, collisions per token interval) and the REINFORCE loss
against hand-worked values."""

from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from motion_sim.data import datatypes
from motion_sim.losses.reinforce_loss import ReinforceLoss
from motion_sim.rl.rewards import RewardFunction

A, S = 3, datatypes.NUM_STEPS
SPT = 40  # 10 Hz steps per token: 2 tokens, knots at rollout steps 39 and 79


def _scene():
    xy = np.zeros([1, A, S, 2], np.float32)
    xy[0, 0, :, 0] = np.arange(S)  # agent 0 drives along y = 0
    xy[0, 1, :, 0] = np.arange(S)
    xy[0, 1, :, 1] = 10.0  # agent 1 on y = 10
    valid = np.ones([1, A, S], bool)
    valid[0, 1, 60:] = False  # agent 1's log ends at step 59
    valid[0, 2] = False
    spec = datatypes.scene_spec()
    scene = {
        k: np.zeros((1,) + tuple(shape), dt)
        for k, (shape, dt) in spec.items()
        if k not in ("scenario_id",)
    }
    scene.update(
        agent_xy=xy,
        agent_valid=valid,
        agent_mask=np.array([[True, True, False]]),
        agent_size=np.tile(np.array([4.0, 2.0, 1.5], np.float32), [1, A, 1]),
    )
    scene = {
        k: (v[:, :A] if k.startswith("agent_") and v.ndim > 1 and v.shape[1] > A else v)
        for k, v in scene.items()
    }
    return {k: tf.constant(v) for k, v in scene.items()}


def _rollout_xy(scene):
    gt = scene["agent_xy"].numpy()[:, None, :, datatypes.CURRENT_INDEX + 1 :, :]  # [1, 1, A, 80, 2]
    xy = gt.copy()
    xy[0, 0, 0] += [3.0, 4.0]  # agent 0 is 5 m off the log everywhere
    xy[0, 0, 1, 10] = xy[0, 0, 0, 10]  # agent 1 jumps onto agent 0 at step 10 only
    xy[0, 0, 2] = xy[0, 0, 0]  # the padded agent sits on agent 0 throughout
    return tf.constant(xy), tf.zeros([1, 1, A, 80])


class RewardsTest(tf.test.TestCase):
    def test_hand_worked(self):
        scene = _scene()
        xy, heading = _rollout_xy(scene)
        r = RewardFunction(collision_weight=2.0)(xy, heading, scene, SPT)
        self.assertAllClose(r.displacement[0, 0], [[5, 5], [0, 0], [0, 0]])
        # Agent 1's second knot (step 90) has no log: unscored, and out of the ADE mask.
        self.assertAllEqual(
            r.displacement_valid[0, 0], [[True, True], [True, False], [False, False]]
        )
        # The overlap at step 10 falls in token 0's interval; the padded agent never counts.
        self.assertAllClose(r.collision[0, 0], [[1, 0], [1, 0], [0, 0]])
        self.assertAllClose(r.reward[0, 0], [[-7, -5], [-2, 0], [0, 0]])
        self.assertAllEqual(r.valid[0, 0], [[True, True], [True, True], [False, False]])


class TokenModel:
    """log pi(token) = theta * token: d loss / d theta is hand-computable."""

    def __init__(self):
        self.theta = tf.Variable(0.5)

    def log_probs(self, scene, tokens, training=None):
        return self.theta * tf.cast(tokens, tf.float32)


class ReinforceLossTest(tf.test.TestCase):
    def test_loss_and_gradient_hand_worked(self):
        scene = _scene()
        xy, heading = _rollout_xy(scene)
        tokens = tf.constant([[[[1, 2], [3, 4], [9, 9]]]])  # [1, 1, A, 2]
        rollout = SimpleNamespace(
            tokens=tokens, log_probs=tf.fill([1, 1, A, 2], -1.0), xy=xy, heading=heading
        )
        loss_fn = ReinforceLoss(
            reward_fn=RewardFunction(collision_weight=2.0),
            steps_per_token=SPT,
            gamma=0.5,
            normalization="none",
        )
        model = TokenModel()
        with tf.GradientTape() as tape:
            out = loss_fn(model, scene, rollout)
        # Returns (gamma 0.5): agent 0: [-7 + 0.5 * -5, -5] = [-9.5, -5]; agent 1: [-2, 0].
        # loss = -theta * sum(token * G) / 4 valid steps = -0.5 * (1*-9.5 + 2*-5 + 3*-2 + 0) / 4
        self.assertAllClose(out.loss, 0.5 * 25.5 / 4)
        self.assertAllClose(tape.gradient(out.loss, model.theta), 25.5 / 4)
        self.assertAllClose(out.metrics["rl/return_mean"], (-9.5 - 5 - 2 + 0) / 4)
        self.assertAllClose(out.metrics["rl/collision_rate"], 1.0)  # both real agents hit once
        self.assertAllClose(out.metrics["rl/ade"], 10.0 / 3)  # (5 + 5 + 0) / 3 scored
        self.assertAllClose(out.metrics["rl/entropy"], 1.0)

    def test_global_normalisation_zero_mean_advantage(self):
        scene = _scene()
        xy, heading = _rollout_xy(scene)
        rollout = SimpleNamespace(
            tokens=tf.ones([1, 1, A, 2], tf.int32),
            log_probs=tf.zeros([1, 1, A, 2]),
            xy=xy,
            heading=heading,
        )
        model = TokenModel()
        with tf.GradientTape() as tape:
            out = ReinforceLoss(steps_per_token=SPT, gamma=0.5)(model, scene, rollout)
        # Same token everywhere: sum(adv) over valid steps is 0, so no gradient at all.
        self.assertAllClose(tape.gradient(out.loss, model.theta), 0.0, atol=1e-6)

    def test_group_needs_two_rollouts(self):
        scene = _scene()
        xy, heading = _rollout_xy(scene)
        rollout = SimpleNamespace(
            tokens=tf.ones([1, 1, A, 2], tf.int32),
            log_probs=tf.zeros([1, 1, A, 2]),
            xy=xy,
            heading=heading,
        )
        with self.assertRaisesRegex(ValueError, "num_rollouts >= 2"):
            ReinforceLoss(steps_per_token=SPT, normalization="group")(TokenModel(), scene, rollout)

    def test_rejects_bad_options(self):
        with self.assertRaisesRegex(ValueError, "normalization"):
            ReinforceLoss(normalization="batch")
        with self.assertRaisesRegex(ValueError, "gamma"):
            ReinforceLoss(gamma=1.5)
