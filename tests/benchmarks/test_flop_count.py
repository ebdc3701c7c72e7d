"""`flop_count`: one test per op kind it reads, each on a graph that is checked to hold it."""

from __future__ import annotations

import tensorflow as tf

from motion_sim.benchmarks import flop_count
from tests.fixtures.testcase import TestCase

_X = tf.TensorSpec([4, 8], tf.float32)
_W = tf.TensorSpec([8, 16], tf.float32)
_MM = 2 * 4 * 8 * 16  # one [4, 8] x [8, 16] matmul
_BIG = 2 * 4 * 8 * 8 + _MM  # [4, 8] x [8, 8], then x [8, 16]: the costlier branch below


def _op_types(graph) -> set:
    """Op types of a graph and of every function it calls, recursively."""
    types, seen = set(), set()

    def walk(g, fns):
        fns = {**fns, **getattr(g, "_functions", {})}
        for op in g.get_operations():
            types.add(op.type)
        for name, fn in fns.items():
            if name not in seen and hasattr(fn, "graph"):
                seen.add(name)
                walk(fn.graph, fns)

    walk(graph, {})
    return types


class FlopCountTest(TestCase):
    def _count(self, fn, *specs, op_type=None, **kwargs):
        concrete = tf.function(fn).get_concrete_function(*specs)
        if op_type is not None:  # the graph really holds the op this test is about
            self.assertIn(op_type, _op_types(concrete.graph))
        return flop_count.concrete_matmul_flops(concrete, **kwargs)

    def test_matmul_and_transposes(self):
        self.assertEqual(self._count(tf.matmul, _X, _W, op_type="MatMul"), _MM)
        transposed = lambda x, w: tf.matmul(tf.transpose(x), w, transpose_a=True)
        self.assertEqual(self._count(transposed, _X, _W), _MM)
        self.assertEqual(
            self._count(lambda x, w: tf.matmul(x, tf.transpose(w), transpose_b=True), _X, _W), _MM
        )

    def test_batch_matmul_broadcasts(self):
        a = tf.TensorSpec([3, 4, 8], tf.float32)
        b = tf.TensorSpec([1, 8, 16], tf.float32)
        count = self._count(tf.matmul, a, b)
        self.assertEqual(count, 3 * _MM)
        adjoint = lambda a, b: tf.linalg.matmul(a, b, adjoint_b=True)
        self.assertEqual(self._count(adjoint, a, tf.TensorSpec([1, 16, 8], tf.float32)), 3 * _MM)

    def test_einsum_with_ellipsis(self):
        a = tf.TensorSpec([2, 3, 4, 8], tf.float32)
        self.assertEqual(
            self._count(lambda a, w: tf.einsum("...k,kn->...n", a, w), a, _W, op_type="Einsum"),
            6 * _MM,
        )

    def test_partitioned_call(self):
        inner = tf.function(lambda x, w: tf.matmul(x, w))
        self.assertEqual(
            self._count(lambda x, w: inner(x, w) + inner(x, w), _X, _W, op_type="PartitionedCall"),
            2 * _MM,
        )

    def test_stateful_partitioned_call(self):
        v = tf.Variable(tf.ones([8, 16]))
        inner = tf.function(lambda x: tf.matmul(x, v))
        self.assertEqual(
            self._count(lambda x: inner(x), _X, op_type="StatefulPartitionedCall"), _MM
        )

    def _cond(self, stateful: bool):
        def fn(x, w, p):
            def cheap():
                if stateful:
                    tf.print("cheap")
                return tf.matmul(x, w)

            return tf.cond(p > 0, cheap, lambda: tf.matmul(x @ tf.ones([8, 8]), w))

        return fn

    def test_stateless_if_max_and_min_branch(self):
        specs = (_X, _W, tf.TensorSpec([], tf.float32))
        self.assertEqual(self._count(self._cond(False), *specs, op_type="StatelessIf"), _BIG)
        self.assertEqual(self._count(self._cond(False), *specs, branch=flop_count.Branch.MIN), _MM)

    def test_if(self):
        specs = (_X, _W, tf.TensorSpec([], tf.float32))
        self.assertEqual(self._count(self._cond(True), *specs, op_type="If"), _BIG)

    def _switch(self, stateful: bool):
        def fn(x, w, i):
            def zero():
                if stateful:
                    tf.print("zero")
                return tf.zeros([4, 16])

            return tf.switch_case(
                i, [zero, lambda: tf.matmul(x, w), lambda: tf.matmul(x @ tf.ones([8, 8]), w)]
            )

        return fn

    def test_stateless_case(self):
        specs = (_X, _W, tf.TensorSpec([], tf.int32))
        self.assertEqual(self._count(self._switch(False), *specs, op_type="StatelessCase"), _BIG)
        self.assertEqual(self._count(self._switch(False), *specs, branch=flop_count.Branch.MIN), 0)

    def test_case(self):
        specs = (_X, _W, tf.TensorSpec([], tf.int32))
        self.assertEqual(self._count(self._switch(True), *specs, op_type="Case"), _BIG)

    def _loop(self, stateful: bool, **loop_kwargs):
        def fn(x, w):
            def body(i, acc):
                if stateful:
                    tf.print(i)
                return i + 1, acc + tf.matmul(x, w)

            # The condition holds a matmul too: it runs once more than the body.
            cond = lambda i, acc: i + tf.cast(tf.reduce_sum(x @ tf.ones([8, 1])) * 0, tf.int32) < 5
            return tf.while_loop(cond, body, (tf.constant(0), tf.zeros([4, 16])), **loop_kwargs)

        return fn

    def test_stateless_while_static_trips(self):
        count = self._count(
            self._loop(False, maximum_iterations=5), _X, _W, op_type="StatelessWhile"
        )
        self.assertEqual(count, 5 * _MM + 6 * 2 * 4 * 8)

    def test_while_default_trips(self):
        # No maximum_iterations: the trip count is not in the graph, `default_trips` is used.
        count = self._count(self._loop(True), _X, _W, op_type="While", default_trips=7)
        self.assertEqual(count, 7 * _MM + 8 * 2 * 4 * 8)

    def test_every_control_flow_op_has_a_test(self):
        tested = {
            "PartitionedCall",
            "StatefulPartitionedCall",
            "If",
            "StatelessIf",
            "Case",
            "StatelessCase",
            "While",
            "StatelessWhile",
        }
        self.assertEqual(set(flop_count.CONTROL_FLOW_OPS), tested)

    def test_missing_function_is_an_error(self):
        inner = tf.function(lambda x, w: tf.matmul(x, w))
        concrete = tf.function(lambda x, w: inner(x, w)).get_concrete_function(_X, _W)
        with self.assertRaisesRegex(ValueError, "not found"):
            flop_count.graph_matmul_flops(_StrippedGraph(concrete.graph))


class _StrippedGraph:
    """A graph whose called functions are not registered (as if counted out of context)."""

    def __init__(self, graph):
        self._graph = graph
        self._functions = {}

    def get_operations(self):
        return self._graph.get_operations()


if __name__ == "__main__":
    tf.test.main()
