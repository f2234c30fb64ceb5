"""Kernel rules of LayerNorm and Dropout."""

from __future__ import annotations

import jax.numpy as jnp
from widelab_core import layers as L

from ..kernel import Kernel, pair_broadcast, self_broadcast
from ..registry import KernelError, RuleContext, register_rule
from .linear import mask_weights


def _norm_axes(layer: L.LayerNorm, k: Kernel, ctx: RuleContext) -> tuple[int, ...]:
    """Spatial axes (1-based, as in ``(n, *S)``) the normalisation averages over."""
    rank = len(k.shape1)
    axes = (layer.axis,) if isinstance(layer.axis, int) else tuple(layer.axis)
    canon = []
    for a in axes:
        if not -rank <= a < rank:
            raise KernelError(layer, f"axis {a} is out of range for shape {k.shape1}", ctx.where)
        canon.append(a % rank)
    if rank - 1 not in canon:
        raise KernelError(
            layer,
            f"the normalised axes {axes} must include the channel axis (-1) for an "
            "infinite-width limit to exist",
            ctx.where,
        )
    if 0 in canon:
        raise KernelError(layer, "normalising over the batch axis has no kernel rule", ctx.where)
    return tuple(a for a in canon if a != rank - 1)


def _spatial_mean(v, axes, mask):
    """Mean of per-position variances ``v`` (n, *S) over ``axes`` (unmasked positions)."""
    if not axes:
        return v
    if mask is None:
        return jnp.broadcast_to(jnp.mean(v, axis=axes, keepdims=True), v.shape)
    w = mask_weights(mask, v.dtype)
    m = jnp.sum(v * w, axis=axes, keepdims=True) / jnp.maximum(
        jnp.sum(w, axis=axes, keepdims=True), 1
    )
    return jnp.broadcast_to(m, v.shape)


def _layer_norm(layer: L.LayerNorm, k: Kernel, ctx: RuleContext) -> Kernel:
    """``K'(x, x') = K(x, x') / sqrt((v(x) + eps)(v(x') + eps))``, ``v`` the variance.

    At infinite width the channel mean of a centred Gaussian layer is 0 and its
    channel variance is the kernel's diagonal (averaged over normalised spatial axes).
    """
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    if not k.is_gaussian:
        raise KernelError(
            layer,
            "its input is not a centred Gaussian process (the channel mean would not "
            "vanish); put a Dense or Conv layer before it",
            ctx.where,
        )
    axes = _norm_axes(layer, k, ctx)
    v1 = _spatial_mean(k.var1(), axes, k.mask1) + layer.eps
    v2 = v1
    if k.cov2 is not None:
        v2 = _spatial_mean(k.var2(), axes, k.mask2) + layer.eps
    a1, a2 = pair_broadcast(v1, v2, k)
    scale = jnp.sqrt(a1 * a2)
    s1a, s1b = self_broadcast(v1, k)
    cov2 = None
    if k.cov2 is not None:
        s2a, s2b = self_broadcast(v2, k)
        cov2 = k.cov2 / jnp.sqrt(s2a * s2b)
    return k.replace(
        nngp=k.nngp / scale,
        ntk=None if k.ntk is None else k.ntk / scale,
        cov1=k.cov1 / jnp.sqrt(s1a * s1b),
        cov2=cov2,
    )


def _diag_scale(x, factor, n_batch: int, k: Kernel):
    """Multiply same-example, same-position entries of ``x`` by ``factor``."""
    sp = k.spatial1
    if n_batch == 2:
        n = x.shape[0]
        eye_b = jnp.eye(n, dtype=bool)
        eye_b = jnp.reshape(eye_b, (n, n) + (1,) * (x.ndim - 2))
    else:
        eye_b = jnp.ones((x.shape[0],) + (1,) * (x.ndim - 1), bool)
    if k.diagonal_spatial or not sp:
        sel = eye_b
    else:
        p = 1
        for s in sp:
            p *= s
        eye_p = jnp.reshape(jnp.eye(p, dtype=bool), (1,) * n_batch + sp + sp)
        sel = eye_b & eye_p
    return jnp.where(sel, x * factor, x)


def _dropout(layer: L.Dropout, k: Kernel, ctx: RuleContext) -> Kernel:
    """Inverted dropout with keep rate ``p`` multiplies each unit's own variance by
    ``1 / p`` and leaves covariances between distinct units unchanged."""
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    if layer.mode == "test" or float(layer.rate) == 0.0:
        return k
    if k.is_input:
        raise KernelError(layer, "dropout on the raw inputs has no kernel rule", ctx.where)
    factor = 1.0 / layer.keep_rate
    cov1 = _diag_scale(k.cov1, factor, 1, k)
    cov2 = None if k.cov2 is None else _diag_scale(k.cov2, factor, 1, k)
    nngp, ntk = k.nngp, k.ntk
    if k.x1_is_x2:
        nngp = _diag_scale(nngp, factor, 2, k)
        ntk = None if ntk is None else _diag_scale(ntk, factor, 2, k)
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)


register_rule(L.LayerNorm, _layer_norm)
register_rule(L.Dropout, _dropout)
