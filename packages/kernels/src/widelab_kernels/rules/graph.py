"""Kernel rule of ``Aggregate`` (graph networks).

For one example the layer is the fixed linear map ``y = A^T x`` on the vertex axes
(``A`` the adjacency of that example's graph, tails first), applied to every channel
alike. So the covariance of two examples transforms bilinearly,
``K'[n1, n2] = A[n1]^T K[n1, n2] A[n2]`` on the vertex axes of each side, for the NNGP
and the NTK alike (no parameters); Du et al. 2019, "Graph Neural Tangent Kernel",
eq. 5 without the degree normalisation. The same map the finite layer uses
(``Aggregate.aggregate``, dense or edge lists) is applied to each side.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from widelab_core import layers as L

from ..kernel import Kernel
from ..registry import KernelError, RuleContext, register_rule


def _one_side(layer: L.Aggregate, x, batch_axis: int, vertex_axes, pattern, vertex_shape):
    """Aggregate ``x`` along ``vertex_axes`` with the graph of the examples on
    ``batch_axis`` (other axes untouched)."""
    front = (batch_axis, *vertex_axes)
    moved = jnp.moveaxis(x, front, tuple(range(len(front))))
    k = len(vertex_axes)
    flat = jnp.reshape(moved, (moved.shape[0], math.prod(vertex_shape), *moved.shape[1 + k :]))
    out = jnp.reshape(layer.aggregate(flat, pattern, vertex_shape), moved.shape)
    return jnp.moveaxis(out, tuple(range(len(front))), front)


def _aggregate(layer: L.Aggregate, k: Kernel, ctx: RuleContext) -> Kernel:
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    if ctx.pattern is None:
        return k
    if k.mask1 is not None or k.mask2 is not None:
        raise KernelError(
            layer,
            "padding masks (mask_constant) are not supported by this layer's kernel",
            ctx.where,
        )
    if k.diagonal_spatial:
        raise KernelError(
            layer,
            "aggregating over vertices needs covariances between all pairs of positions; "
            "use diagonal_spatial=False",
            ctx.where,
        )
    d = k.n_spatial
    try:
        axes = [a - 1 for a in layer.axes(d + 2)]
    except L.ShapeError as e:
        raise KernelError(layer, e.detail, ctx.where) from None
    vertex_shape = tuple(k.spatial1[a] for a in axes)
    p1, p2 = ctx.pattern

    def side(x, batch_axis, offset, pattern):
        vertex_axes = tuple(offset + a for a in axes)
        try:
            return _one_side(layer, x, batch_axis, vertex_axes, pattern, vertex_shape)
        except L.ShapeError as e:
            raise KernelError(layer, e.detail, ctx.where) from None

    def pair(x, pa, pb):
        if x is None:
            return None
        return side(side(x, 0, 2, pa), 1, 2 + d, pb)

    def own(x, p):
        if x is None:
            return None
        return side(side(x, 0, 1, p), 0, 1 + d, p)

    return k.replace(
        nngp=pair(k.nngp, p1, p2),
        ntk=pair(k.ntk, p1, p2),
        cov1=own(k.cov1, p1),
        cov2=own(k.cov2, p2),
        is_input=False,
    )


register_rule(L.Aggregate, _aggregate, needs_full_spatial=True)
