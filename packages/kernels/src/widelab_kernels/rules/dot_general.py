"""Kernel rule of ``DotGeneral``: ``dot_general`` of spatial axes with a constant.

The layer is a fixed linear map of positions applied to every channel alike, so the
covariance transforms bilinearly, ``K'(o, o') = sum_{p, q} M[o, p] M[o', q] K(p, q)``,
with ``M`` the map of :meth:`widelab_core.layers.DotGeneral.einsum_labels`: contracted
axes summed against the constant, batch-paired axes multiplied elementwise, the
constant's free axes becoming new spatial axes (Novak et al. 2020, "Neural Tangents",
Sec. 3 on linear layers). The same einsum the finite layer runs is applied to each side.
"""

from __future__ import annotations

import jax.numpy as jnp
from widelab_core import layers as L

from ..kernel import Kernel
from ..registry import KernelError, RuleContext, register_rule


def _labels(layer: L.DotGeneral, rank: int, offset: int, base: int):
    """Einsum labels of one side of a kernel: the layer's input/constant/output labels
    for the spatial axes, placed at ``offset`` (kernel axis of the first spatial axis),
    new labels from ``base``."""
    xl, al, out = layer.einsum_labels(rank)

    def lab(i):
        # input spatial axis i (1..rank-2) -> offset + i - 1; free labels (>= rank) -> base
        return offset + i - 1 if 1 <= i <= rank - 2 else base + i - rank

    return [lab(i) for i in xl[1:-1]], [lab(i) for i in al], [lab(i) for i in out[1:-1]]


def _transform(layer, x, lead: int, d: int, a, full: bool):
    """Apply the layer's position map to the spatial axes of ``x`` (``lead`` leading
    batch axes, then ``d`` spatial axes, twice when ``full``)."""
    if x is None:
        return None
    rank = d + 2
    big = lead + 2 * d + 2  # first label free for the constant's free axes
    n_free = a.ndim - (len(layer.input_axes) + len(layer.batch_input_axes))
    in1, a1, out1 = _labels(layer, rank, lead, big)
    lead_l = list(range(lead))
    if not full:
        return jnp.einsum(x, lead_l + in1, a, a1, a, a1, lead_l + out1, precision="highest")
    in2, a2, out2 = _labels(layer, rank, lead + d, big + n_free)
    return jnp.einsum(
        x, lead_l + in1 + in2, a, a1, a, a2, lead_l + out1 + out2, precision="highest"
    )


def _dot_general(layer: L.DotGeneral, k: Kernel, ctx: RuleContext) -> Kernel:
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    if k.mask1 is not None or k.mask2 is not None:
        raise KernelError(
            layer,
            "padding masks (mask_constant) are not supported by this layer's kernel; "
            "call the kernel function without mask_constant",
            ctx.where,
        )
    try:
        shape1 = layer.out_shape(k.shape1)
        shape2 = layer.out_shape(k.shape2)
    except L.ShapeError as e:
        raise KernelError(layer, e.detail, ctx.where) from None
    a = layer.array
    if a.ndim == 0:
        s = float(a) ** 2
        scale = lambda x: None if x is None else x * s
        return k.replace(
            nngp=scale(k.nngp), ntk=scale(k.ntk), cov1=scale(k.cov1), cov2=scale(k.cov2)
        )
    if k.diagonal_spatial and _needs_full(layer):
        raise KernelError(
            layer,
            "contracting positions or adding the constant's free axes needs covariances "
            "between all pairs of positions; use diagonal_spatial=False",
            ctx.where,
        )
    d = k.n_spatial
    full = not k.diagonal_spatial
    go = lambda x, lead: _transform(layer, x, lead, d, jnp.asarray(a, x.dtype), full)
    return k.replace(
        nngp=None if k.nngp is None else go(k.nngp, 2),
        ntk=None if k.ntk is None else go(k.ntk, 2),
        cov1=None if k.cov1 is None else go(k.cov1, 1),
        cov2=None if k.cov2 is None else go(k.cov2, 1),
        shape1=shape1,
        shape2=shape2,
        diagonal_spatial=k.diagonal_spatial or len(shape1) == 2,
        is_input=False,
    )


def _needs_full(layer: L.DotGeneral) -> bool:
    return bool(layer.input_axes) or (bool(layer.free_axes) and len(layer.array.shape) > 0)


register_rule(L.DotGeneral, _dot_general, needs_full_spatial=_needs_full)
