"""Run as `python -m tests.learner.distribution_check` by test_distribution.py: one BC and one
RL step (fixed rollouts) under the default strategy and under MirroredStrategy on 2 virtual
CPUs, from the same weights and the same global batch; prints the max abs difference of the
parameter updates as JSON.

A separate process because virtual devices must be configured before TensorFlow initialises,
which any earlier test in the same pytest process would already have done.
"""

import json
import tempfile

import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

from motion_sim import sampler as sampler_lib  # noqa: E402
from motion_sim import tokenizer as tokenizer_lib  # noqa: E402
from motion_sim.data import pipeline  # noqa: E402
from motion_sim.learner.learner import Learner  # noqa: E402
from motion_sim.losses.bc_loss import BCLoss  # noqa: E402
from motion_sim.losses.reinforce_loss import ReinforceLoss  # noqa: E402
from motion_sim.models.sim_agent_model import SimAgentModel  # noqa: E402
from motion_sim.rl import returns as returns_lib  # noqa: E402
from motion_sim.rl.rewards import RewardFunction  # noqa: E402
from tests.fixtures import training as fixtures  # noqa: E402

R = 2
LR = 0.5


def fixed_rollouts(shards, tokenizer):
    """Random tokens decoded to trajectories, one table row per scene, keyed by scenario_id."""
    ds = pipeline.make_dataset(shards, 2, shuffle=False, repeat=False)
    scene = next(iter(ds))
    b, a = scene["agent_mask"].shape
    tokens = tf.random.stateless_uniform(
        [b, R, a, tokenizer.num_tokens], [1, 2], 0, tokenizer.vocab_size, tf.int32
    )
    pos, vel = tokenizer.initial_state(scene["agent_xy"], scene["agent_valid"])
    h0 = scene["agent_heading"][:, :, 10]
    tile = lambda x: tf.repeat(x[:, None], R, axis=1)  # noqa: E731
    xy, heading = tokenizer.decode(tokens, tile(pos), tile(vel), tile(h0))
    logp = tf.random.stateless_uniform(tokens.shape, [3, 4], -5.0, 0.0)
    return scene["scenario_id"], sampler_lib.RolloutOutput(tokens, logp, xy, heading, xy, heading)


def one_step(strategy, shards, weights, mode, table=None):
    tokenizer = tokenizer_lib.ActionTokenizer()
    with strategy.scope():
        model = SimAgentModel()
        model.set_weights(weights)
        optimizer = tf.keras.optimizers.SGD(LR)  # plain SGD: the update is proportional to
        #                                          the gradient, so any normalisation slip shows
    rollout_fn = None
    if mode == "bc":
        loss = BCLoss(tokenizer=tokenizer)
    else:
        ids, rollouts = table
        loss = ReinforceLoss(reward_fn=RewardFunction(collision_weight=3.0), steps_per_token=5)

        def rollout_fn(scene, seed):  # the scene's own precomputed rollouts, whichever replica
            idx = tf.argmax(
                tf.cast(tf.equal(scene["scenario_id"][:, None], ids[None]), tf.int32), 1
            )
            return tf.nest.map_structure(lambda x: tf.gather(x, idx), rollouts)

    def dataset_fn(ctx):
        return pipeline.make_dataset(shards, 2, shuffle=False, repeat=True, input_context=ctx)

    with tempfile.TemporaryDirectory() as d:
        learner = Learner(
            d,
            strategy,
            model,
            optimizer,
            loss,
            dataset_fn,
            rollout_fn=rollout_fn,
            max_steps=1,
            steps_per_loop=1,
            checkpoint_interval=0,
            summary_interval=0,
            log_interval=10,
            grad_clip_norm=None,
        )
        metrics = learner.run()
    new = model.get_weights()
    return [n - w for n, w in zip(new, weights)], metrics


def main():
    shards = fixtures.preprocess_sample(tempfile.mkdtemp())
    fixtures.parse_tiny_gin()
    tf.keras.utils.set_random_seed(0)
    weights = SimAgentModel().get_weights()
    tokenizer = tokenizer_lib.ActionTokenizer()
    table = fixed_rollouts(shards, tokenizer)
    default = tf.distribute.get_strategy()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": mirrored.num_replicas_in_sync}
    for mode in ("bc", "rl"):
        d_single, m_single = one_step(default, shards, weights, mode, table)
        d_multi, m_multi = one_step(mirrored, shards, weights, mode, table)
        out[mode] = {
            "max_abs_diff": max(
                float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(d_single, d_multi)
            ),
            "max_abs_update": max(float(tf.reduce_max(tf.abs(a))) for a in d_single),
            "loss_single": m_single[f"{mode}/loss"],
            "loss_multi": m_multi[f"{mode}/loss"],
        }

    # The replica all-reduce of the return statistics on its own.
    def replica(_):
        i = tf.distribute.get_replica_context().replica_id_in_sync_group
        v = tf.gather(tf.constant([[1.0, 2.0], [3.0, 10.0]]), i)
        m = tf.gather(tf.constant([[True, True], [True, False]]), i)
        return returns_lib.global_stats(v, m)

    stats = mirrored.run(tf.function(replica), args=(tf.constant(0),))
    out["stats"] = [
        [float(s.mean), float(s.std), float(s.count)]
        for s in mirrored.experimental_local_results(stats)
    ]
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
