"""The benchmarks' analytic FLOP counts (`model_flops`) against a count of the traced graph.

Every figure here comes from `flop_count` on the tiny model's real programs -- the compiled
rollout, the learner's BC step, the uncached baseline's per-step programs -- not from the
formula restated, so a formula that mis-models the network (a missed layer, a wrong width, the
cached attention's folded column) fails.
"""

from __future__ import annotations

import tempfile
from unittest import mock

import pytest
import tensorflow as tf

from motion_sim import tokenizer as tokenizer_lib
from motion_sim.benchmarks import flop_count, model_flops, rollout
from motion_sim.layers import decoder_block
from motion_sim.learner.learner import Learner
from motion_sim.losses.bc_loss import BCLoss
from motion_sim.losses.reinforce_loss import ReinforceLoss
from motion_sim.models import inputs, motion_decoder
from motion_sim.sampler import Sampler
from tests.fixtures.policy import tiny_model, womd_scene
from tests.fixtures.testcase import TestCase

_R = 2


def _rollout_graph_flops(model, scene, branches=(flop_count.Branch.MAX,)):
    """Graph FLOPs of the Sampler's compiled rollout program on `scene`, per branch policy."""
    tok = tokenizer_lib.ActionTokenizer()
    sampler = Sampler(model, tok, num_rollouts=_R)
    shape = list(scene["agent_mask"].shape) + [tok.num_tokens]
    frame = (
        tf.constant(scene["frame_origin"], tf.float64),
        tf.constant(scene["frame_yaw"], tf.float64),
    )
    concrete = sampler._rollout_fn.get_concrete_function(
        inputs.scene_inputs(scene),
        frame,
        tf.constant([1, 2]),
        tf.zeros(shape, tf.int32),
        tf.zeros(shape, tf.bool),
    )
    return [flop_count.concrete_matmul_flops(concrete, branch=b) for b in branches]


def _bc_learner(model, scene, root):
    tensors = {k: tf.constant(v) for k, v in scene.items() if v.dtype.kind not in "SUO"}
    return Learner(
        root,
        tf.distribute.get_strategy(),
        model,
        tf.keras.optimizers.AdamW(1e-4),
        BCLoss(),
        lambda ctx: tf.data.Dataset.from_tensors(tensors).repeat(),
        max_steps=10,
        steps_per_loop=1,
        checkpoint_interval=0,
        summary_interval=0,
        log_interval=10**9,
    )


def _padded_scene():
    """The real scene, 2 scenes of 6 agent slots: scene 0 has 4 valid agents, scene 1 all 6;
    scene 0 also loses 40 polylines and 3 traffic lights to padding."""
    scene = womd_scene(6, batch=2)
    scene["agent_mask"][0, 4:] = False
    scene["map_valid"][0, -40:] = False
    scene["tl_valid"][0, :, :3] = False
    return scene


def _compact(scene, b):
    """Scene b of `scene` holding only its valid agents, polylines and lights."""
    one = {k: v[b : b + 1] for k, v in scene.items()}
    agents = one["agent_mask"][0]
    polylines = one["map_valid"][0].any(-1)
    lights = one["tl_valid"][0, 10]
    for name, value in one.items():
        if name.startswith("agent_") or name == "tracks_to_predict":
            one[name] = value[:, agents]
        elif name.startswith("map_"):
            one[name] = value[:, polylines]
        elif name.startswith("tl_"):
            one[name] = value[:, :, lights]
    return one


class ModelFlopsVsGraphTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model = tiny_model()
        self.dims = model_flops.ModelDims.from_model(self.model)
        self.T = tokenizer_lib.ActionTokenizer().num_tokens

    def test_rollout_equals_graph_with_one_prefix_bucket(self):
        # One bucket: every cached step reads the whole cache, so the graph count is exact.
        scene = womd_scene(3)
        with mock.patch.object(decoder_block, "_MAX_PREFIX_BUCKETS", 1):
            (graph,) = _rollout_graph_flops(self.model, scene)
            analytic = rollout.rollout_flops(self.model, scene, _R, self.T, useful=False)
        self.assertEqual(analytic, graph)

    def test_rollout_between_cheapest_and_costliest_bucket(self):
        # 8 buckets: the graph cannot say which bucket a loop step takes; the executed count
        # (each step its own bucket) must lie strictly between all-cheapest and all-costliest.
        scene = womd_scene(3)
        low, high = _rollout_graph_flops(
            self.model, scene, (flop_count.Branch.MIN, flop_count.Branch.MAX)
        )
        analytic = rollout.rollout_flops(self.model, scene, _R, self.T, useful=False)
        self.assertLess(low, analytic)
        self.assertLess(analytic, high)

    def test_bc_step_equals_the_learners_graph(self):
        scene = _padded_scene()
        learner = _bc_learner(self.model, scene, tempfile.mkdtemp())
        graph = model_flops.learner_step_graph_flops(learner, self.T)
        analytic = model_flops.train_step_flops("bc", self.model, [scene], _R, self.T, useful=False)
        self.assertEqual(analytic, graph)

    @pytest.mark.slow  # ~40 s on the loaded 2-core box: traces the sampler and the RL step
    def test_rl_step_equals_the_learners_graph_with_one_prefix_bucket(self):
        # The RL step: the sampled rollout + forward and backward of the R rollouts (the
        # reward's collision geometry has no matmuls). One bucket makes the graph exact.
        scene = womd_scene(3)
        tensors = {k: tf.constant(v) for k, v in scene.items() if v.dtype.kind not in "SUO"}
        tok = tokenizer_lib.ActionTokenizer()
        with mock.patch.object(decoder_block, "_MAX_PREFIX_BUCKETS", 1):
            sampler = Sampler(self.model, tok, num_rollouts=_R)
            learner = Learner(
                tempfile.mkdtemp(),
                tf.distribute.get_strategy(),
                self.model,
                tf.keras.optimizers.AdamW(1e-4),
                ReinforceLoss(steps_per_token=tok.steps_per_token),
                lambda ctx: tf.data.Dataset.from_tensors(tensors).repeat(),
                rollout_fn=lambda s, seed: sampler(s, seed),
                max_steps=10,
                steps_per_loop=1,
                checkpoint_interval=0,
                summary_interval=0,
                log_interval=10**9,
            )
            graph = model_flops.learner_step_graph_flops(learner, self.T)
            analytic = model_flops.train_step_flops(
                "rl", self.model, [scene], _R, self.T, useful=False
            )
        self.assertEqual(analytic, graph)

    def test_useful_bc_work_is_the_graph_of_the_valid_entities_alone(self):
        # Useful work of a padded batch = the executed work of each scene cut to its valid
        # agents, polylines and lights, with one self-attention chunk per step (then the
        # chunks read exactly each query's block-causal prefix).
        scene = _padded_scene()
        useful = model_flops.train_step_flops("bc", self.model, [scene], _R, self.T, useful=True)
        graph = 0.0
        with mock.patch.object(motion_decoder, "_SELF_ATTENTION_CHUNKS", self.T):
            for b in range(2):
                learner = _bc_learner(self.model, _compact(scene, b), tempfile.mkdtemp())
                graph += model_flops.learner_step_graph_flops(learner, self.T)
        self.assertEqual(useful, graph)
        executed = model_flops.train_step_flops("bc", self.model, [scene], _R, self.T, useful=False)
        self.assertLess(useful, executed)

    def test_useful_rollout_counts_valid_entities_only(self):
        scene = _padded_scene()
        counts = model_flops.scene_counts(scene, useful=True)
        self.assertEqual(
            [(c.agents, c.polylines, c.lights) for c in counts], [(4, 216, 9), (6, 256, 12)]
        )
        useful = rollout.rollout_flops(self.model, scene, _R, self.T, useful=True)
        per_scene = sum(
            rollout.rollout_flops(self.model, _compact(scene, b), _R, self.T, useful=True)
            for b in range(2)
        )
        self.assertEqual(useful, per_scene)
        self.assertLess(useful, rollout.rollout_flops(self.model, scene, _R, self.T, useful=False))

    def test_uncached_equals_the_sum_of_its_step_programs(self):
        scene = womd_scene(3)
        run_fns, real_function = [], tf.function

        def capture(fn=None, **kwargs):  # collect the baseline's tf.functions as it builds them
            if fn is None:  # used as @tf.function(jit_compile=True)
                return lambda f: capture(f, **kwargs)
            wrapped = real_function(fn, **kwargs)
            run_fns.append(wrapped)
            return wrapped

        tok = tokenizer_lib.ActionTokenizer()
        with mock.patch.object(rollout.tf, "function", side_effect=capture):
            run = rollout.uncached_rollout_fn(self.model, tok, _R)
        prepare, step = run_fns
        model_scene = inputs.scene_inputs(scene)
        state = prepare(model_scene)
        graph = flop_count.concrete_matmul_flops(prepare.get_concrete_function(model_scene))
        seed = tf.constant([1, 2])
        for t in range(self.T):
            tokens = tf.TensorSpec([_R, 3, t], tf.int32)
            graph += flop_count.concrete_matmul_flops(
                step.get_concrete_function(tokens, *state, seed)
            )
        del run
        self.assertEqual(rollout.uncached_rollout_flops(self.model, scene, _R, self.T), graph)


if __name__ == "__main__":
    tf.test.main()
