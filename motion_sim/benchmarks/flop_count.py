"""Matmul FLOPs of a traced `tf.function`, from the graph's static shapes.

Counts MatMul, BatchMatMul(V2/V3) and Einsum (2 FLOPs per multiply-add) in the graph and,
recursively, in the functions its control-flow ops call -- every kind TF 2 emits from a
`tf.function`:

  PartitionedCall / StatefulPartitionedCall   nested `tf.function`s, `recompute_grad`: once.
  While / StatelessWhile   `tf.while_loop`: the body `trips` times and the condition
      `trips + 1` times; trips = the loop's static `maximum_iterations`, else `default_trips`.
  If / StatelessIf         `tf.cond`: one branch, see `Branch`.
  Case / StatelessCase     `tf.switch_case` (the cached decoder's prefix buckets): one branch.

Which branch a conditional takes is only known at run time, so `branch` picks the costliest
(`Branch.MAX`, the default: an upper bound) or the cheapest (`Branch.MIN`); a count that must
be exact should come from a graph whose conditionals all have one branch (or equal ones).
Elementwise work is left out: MFU is measured against a matmul roofline, so only matmul work is
comparable.
"""

from __future__ import annotations

import enum

import numpy as np
import tensorflow as tf

_MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")
_CALLS = ("PartitionedCall", "StatefulPartitionedCall")
_WHILES = ("While", "StatelessWhile")
_IFS = ("If", "StatelessIf")
_CASES = ("Case", "StatelessCase")
CONTROL_FLOW_OPS = _CALLS + _WHILES + _IFS + _CASES


class Branch(enum.Enum):
    """Which branch of an If / Case to count."""

    MAX = "max"
    MIN = "min"


def _dims(t):
    return (
        [int(d) if d is not None else 1 for d in t.shape.as_list()]
        if t.shape.rank is not None
        else None
    )


def _einsum_flops(op) -> int:
    eq = op.get_attr("equation").decode()
    lhs = eq.split("->")[0].split(",")
    sizes = {}
    for spec, t in zip(lhs, op.inputs):
        shape = _dims(t)
        if shape is None:
            return 0
        if "..." in spec:
            pre, post = spec.split("...")
            n_ell = len(shape) - len(pre) - len(post)
            letters = list(pre) + [f"_{n_ell - i}" for i in range(n_ell)] + list(post)
        else:
            letters = list(spec)
        for letter, d in zip(letters, shape):
            sizes[letter] = max(sizes.get(letter, 1), d)
    return 2 * int(np.prod(list(sizes.values()), dtype=np.float64))


def _op_flops(op) -> int:
    if op.type == "Einsum":
        return _einsum_flops(op)
    a, b = (_dims(t) for t in op.inputs[:2])
    if a is None or b is None:
        return 0
    if op.type == "MatMul":
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return 2 * m * k * n
    adj_x, adj_y = op.get_attr("adj_x"), op.get_attr("adj_y")
    m, k = (a[-1], a[-2]) if adj_x else (a[-2], a[-1])
    n = b[-2] if adj_y else b[-1]
    batch = int(np.prod(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])), dtype=np.float64))
    return 2 * batch * m * k * n


def _while_trips(op, default_trips: int) -> int:
    # while_v2's first two inputs are the loop counter and maximum_iterations (-1 if unset).
    trips = tf.get_static_value(op.inputs[1]) if len(op.inputs) > 1 else None
    return int(trips) if trips is not None and int(trips) > 0 else default_trips


def graph_matmul_flops(
    graph, default_trips: int = 1, branch: Branch = Branch.MAX, _fns=None
) -> float:
    """Matmul FLOPs of one run of `graph` (a `FuncGraph`), control flow followed (see module)."""
    fns = dict(_fns or {})
    fns.update(getattr(graph, "_functions", {}))
    pick = max if branch is Branch.MAX else min

    def call(name):
        fn = fns.get(name)
        if fn is None or not hasattr(fn, "graph"):
            raise ValueError(f"flop_count: function {name} called in the graph is not found")
        return graph_matmul_flops(fn.graph, default_trips, branch, fns)

    total = 0.0
    for op in graph.get_operations():
        if op.type in _MATMULS:
            total += _op_flops(op)
        elif op.type in _CALLS:
            total += call(op.get_attr("f").name)
        elif op.type in _WHILES:
            trips = _while_trips(op, default_trips)
            total += trips * call(op.get_attr("body").name)
            total += (trips + 1) * call(op.get_attr("cond").name)
        elif op.type in _IFS:
            total += pick(call(op.get_attr(b).name) for b in ("then_branch", "else_branch"))
        elif op.type in _CASES:
            total += pick(call(b.name) for b in op.get_attr("branches"))
    return total


def concrete_matmul_flops(
    concrete_fn, default_trips: int = 1, branch: Branch = Branch.MAX
) -> float:
    """FLOPs of one call of a concrete function (`tf.function(...).get_concrete_function(...)`)."""
    return graph_matmul_flops(concrete_fn.graph, default_trips, branch)
