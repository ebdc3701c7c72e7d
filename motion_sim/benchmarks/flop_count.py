"""Matmul FLOPs of a traced `tf.function`, from the graph's static shapes.

Counts MatMul, BatchMatMul(V2/V3) and Einsum (2 FLOPs per multiply-add) in the graph and,
recursively, in the functions it calls; a While body counts its static trip count
(`maximum_iterations`, else `default_trips`) times, an If its costlier branch. Elementwise work is
left out: MFU is measured against a matmul roofline, so only matmul work is comparable.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

_MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")
_CALLS = ("PartitionedCall", "StatefulPartitionedCall")
_WHILES = ("While", "StatelessWhile")
_IFS = ("If", "StatelessIf")


def _dims(t):
    return [int(d) if d is not None else 1 for d in t.shape.as_list()] if t.shape.rank is not None else None


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
        for l, d in zip(letters, shape):
            sizes[l] = max(sizes.get(l, 1), d)
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


def graph_matmul_flops(graph, default_trips: int = 1, _fns=None) -> float:
    fns = dict(_fns or {})
    fns.update(getattr(graph, "_functions", {}))
    total = 0.0
    for op in graph.get_operations():
        if op.type in _MATMULS:
            total += _op_flops(op)
        elif op.type in _CALLS:
            total += _call(fns, op.get_attr("f").name, default_trips)
        elif op.type in _WHILES:
            trips = tf.get_static_value(op.inputs[1]) if len(op.inputs) > 1 else None
            trips = int(trips) if trips is not None and int(trips) > 0 else default_trips
            total += trips * _call(fns, op.get_attr("body").name, default_trips)
        elif op.type in _IFS:
            total += max(_call(fns, op.get_attr(b).name, default_trips)
                         for b in ("then_branch", "else_branch"))
    return total


def _call(fns, name, default_trips) -> float:
    fn = fns.get(name)
    if fn is None or not hasattr(fn, "graph"):
        return 0.0
    return graph_matmul_flops(fn.graph, default_trips, fns)


def concrete_matmul_flops(concrete_fn, default_trips: int = 1) -> float:
    """FLOPs of one call of a concrete function (`tf.function(...).get_concrete_function(...)`)."""
    return graph_matmul_flops(concrete_fn.graph, default_trips)
