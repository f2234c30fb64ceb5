"""Kernel rules of the spatial layers: Conv, AvgPool/SumPool, GlobalAvgPool/GlobalSumPool.

Convolutions and pools are linear in the layer input, so the output kernel is a
window sum of the input kernel. With i.i.d. filter taps a convolution only pairs
positions at the *same* filter offset: ``K'(o, o') = W^2 / |f| sum_d K(s o + d, s o' + d)``
(Novak et al. 2019, "Bayesian deep CNNs with many channels are GPs", eq. 7), so a
pool-free CNN needs only per-position covariances. A pool sums over independent
offsets on both sides, ``K'(o, o') = sum_{d, d'} K(s o + d, s o' + d') / |w|^2``, which
needs all position pairs. Both are computed with shifted strided slices (no
one-channel ``lax.conv``), one spatial axis at a time.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from widelab_core import layers as L

from ..kernel import Kernel
from ..registry import KernelError, RuleContext, register_rule
from .linear import affine_update, mask_weights


def _pads(size: int, window: int, stride: int, padding: str) -> tuple[int, int, int]:
    kind = "VALID" if padding == "VALID" else "SAME"
    ((lo, hi),) = jax.lax.padtype_to_pads((size,), (window,), (stride,), kind)
    n_out = (size + lo + hi - window) // stride + 1
    return lo, hi, n_out


def shift_sum(x, axes: tuple[int, ...], window: int, stride: int, padding: str):
    """``sum_d x[s o + d - lo]`` along every axis of ``axes`` *simultaneously*.

    With one axis this is a strided box sum; with two axes (the two position axes
    of a covariance) it sums the diagonal shifts a convolution produces. ``SAME``
    pads with zeros, ``CIRCULAR`` wraps around.
    """
    size = x.shape[axes[0]]
    lo, hi, n_out = _pads(size, window, stride, padding)
    if lo or hi:
        widths = [(0, 0)] * x.ndim
        for a in axes:
            widths[a] = (lo, hi)
        x = jnp.pad(x, widths, mode="wrap" if padding == "CIRCULAR" else "constant")
    out = None
    for d in range(window):
        sl = x
        for a in axes:
            sl = jax.lax.slice_in_dim(sl, d, d + (n_out - 1) * stride + 1, stride, a)
        out = sl if out is None else out + sl
    return out


def _centre(mask, window, strides, padding):
    """Mask of each output position: the mask at the centre of its window."""
    if mask is None:
        return None
    index = [slice(None)]
    for size, k, s in zip(mask.shape[1:], window, strides):
        lo, _, n_out = _pads(size, k, s, padding)
        start = (k - 1) // 2 - lo
        index.append(slice(start, start + (n_out - 1) * s + 1, s))
    return mask[tuple(index)]


def _weights(k: Kernel):
    """Per-example position weights (1 real, 0 padding) for x1 and x2, or ``None``."""
    if k.mask1 is None and k.mask2 is None:
        return None, None
    dt = k.nngp.dtype
    w1 = None if k.mask1 is None else mask_weights(k.mask1, dt)
    w2 = w1 if k.x1_is_x2 else (None if k.mask2 is None else mask_weights(k.mask2, dt))
    return w1, w2


def _outer(k: Kernel, w1, w2, pair: bool):
    """Broadcastable weights for a pair block (``pair``) or a batch-diagonal block."""
    d = k.n_spatial
    ones = (1,) * d
    if k.diagonal_spatial:
        if pair:
            return w1[:, None] * w2[None]
        return w1
    if pair:
        a = jnp.reshape(w1, (w1.shape[0], 1, *w1.shape[1:], *ones))
        b = jnp.reshape(w2, (1, w2.shape[0], *ones, *w2.shape[1:]))
        return a * b
    a = jnp.reshape(w1, (w1.shape[0], *w1.shape[1:], *ones))
    b = jnp.reshape(w1, (w1.shape[0], *ones, *w1.shape[1:]))
    return a * b


def zero_padding_positions(k: Kernel) -> Kernel:
    """Zero the covariances of padded positions (what ``zero_masked`` does to inputs)."""
    w1, w2 = _weights(k)
    if w1 is None and w2 is None:
        return k
    if w1 is None:
        w1 = jnp.ones(k.shape1[:-1], k.nngp.dtype)
    if w2 is None:
        w2 = jnp.ones(k.shape2[:-1], k.nngp.dtype)
    pw = _outer(k, w1, w2, True)
    ntk = None if k.ntk is None else k.ntk * pw
    cov2 = None
    if k.cov2 is not None:
        cov2 = k.cov2 * _outer(k, w2, w2, False)
    return k.replace(nngp=k.nngp * pw, ntk=ntk, cov1=k.cov1 * _outer(k, w1, w1, False), cov2=cov2)


def _spatial_check(layer, k: Kernel, n: int, ctx: RuleContext):
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    if k.n_spatial != n:
        raise KernelError(
            layer,
            f"a {n}-D window needs inputs with {n} spatial axes, got shape {k.shape1}",
            ctx.where,
        )


def _window_all(k: Kernel, window, strides, padding, *, pair: bool) -> tuple:
    """Apply a window sum to (nngp, ntk, cov1, cov2): ``pair`` = conv (diagonal shifts)."""
    d = k.n_spatial

    def go(x, batch_axes):
        if x is None:
            return None
        for i in range(d):
            a = batch_axes + i
            if k.diagonal_spatial:
                x = shift_sum(x, (a,), window[i], strides[i], padding)
            elif pair:
                x = shift_sum(x, (a, a + d), window[i], strides[i], padding)
            else:
                x = shift_sum(x, (a,), window[i], strides[i], padding)
                x = shift_sum(x, (a + d,), window[i], strides[i], padding)
        return x

    return go(k.nngp, 2), go(k.ntk, 2), go(k.cov1, 1), go(k.cov2, 1)


def _conv(layer: L.Conv, k: Kernel, ctx: RuleContext) -> Kernel:
    fs = tuple(layer.filter_shape)
    _spatial_check(layer, k, len(fs), ctx)
    strides = layer.strides or (1,) * len(fs)
    k = zero_padding_positions(k)
    size = math.prod(fs)
    nngp, ntk, cov1, cov2 = _window_all(k, fs, strides, layer.padding, pair=True)
    mean = lambda x: None if x is None else x / size
    pooled = (mean(nngp), mean(ntk), mean(cov1), mean(cov2))
    nngp, ntk, cov1, cov2 = affine_update(
        k, layer.W_std, layer.b_std, layer.parameterization, k.channels * size, pooled
    )
    out1 = (k.shape1[0], *nngp.shape[2 : 2 + len(fs)], layer.out_chan)
    out2 = (k.shape2[0], *out1[1:])
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        mask1=_centre(k.mask1, fs, strides, layer.padding),
        mask2=_centre(k.mask2, fs, strides, layer.padding),
        shape1=out1,
        shape2=out2,
        is_gaussian=True,
        is_input=False,
    )


def _full_layout(layer, k: Kernel, ctx):
    if k.diagonal_spatial and k.n_spatial:
        raise KernelError(
            layer,
            "needs covariances between all pairs of positions but the kernel keeps only "
            "same-position ones; register its rule with needs_full_spatial=True",
            ctx.where,
        )


def _counts(layer, mask, window, strides, padding, dtype, n_batch_shape):
    """Divisor of an average pool per output position, shape ``(n, *S_out)``."""
    size = math.prod(window)
    normalize_edges = getattr(layer, "normalize_edges", False)
    if mask is None and not normalize_edges:
        return None
    present = jnp.ones(n_batch_shape, dtype) if mask is None else mask_weights(mask, dtype)
    if normalize_edges:
        cnt = present
        for i in range(len(window)):
            cnt = shift_sum(cnt, (1 + i,), window[i], strides[i], padding)
        return jnp.maximum(cnt, 1)
    masked = 1 - present
    for i in range(len(window)):
        masked = shift_sum(masked, (1 + i,), window[i], strides[i], padding)
    return jnp.maximum(size - masked, 1)


def _pool(layer, k: Kernel, ctx: RuleContext) -> Kernel:
    ws = tuple(layer.window_shape)
    _spatial_check(layer, k, len(ws), ctx)
    _full_layout(layer, k, ctx)
    strides = layer.strides or (1,) * len(ws)
    k = zero_padding_positions(k)
    nngp, ntk, cov1, cov2 = _window_all(k, ws, strides, layer.padding, pair=False)
    if isinstance(layer, L.AvgPool):
        dt = k.nngp.dtype
        c1 = _counts(layer, k.mask1, ws, strides, layer.padding, dt, k.shape1[:-1])
        if c1 is None:
            div = float(math.prod(ws)) ** 2
            nngp, cov1 = nngp / div, cov1 / div
            ntk = None if ntk is None else ntk / div
            cov2 = None if cov2 is None else cov2 / div
        else:
            m2 = k.mask1 if k.x1_is_x2 else k.mask2
            c2 = _counts(layer, m2, ws, strides, layer.padding, dt, k.shape2[:-1])
            tmp = k.replace(diagonal_spatial=False, shape1=(0, *c1.shape[1:], 0))
            inv1, inv2 = 1 / c1, 1 / c2
            pw = _outer(tmp, inv1, inv2, True)
            nngp = nngp * pw
            ntk = None if ntk is None else ntk * pw
            cov1 = cov1 * _outer(tmp, inv1, inv1, False)
            cov2 = None if cov2 is None else cov2 * _outer(tmp, inv2, inv2, False)
    sp = nngp.shape[2 : 2 + len(ws)]
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        mask1=_centre(k.mask1, ws, strides, layer.padding),
        mask2=_centre(k.mask2, ws, strides, layer.padding),
        shape1=(k.shape1[0], *sp, k.shape1[-1]),
        shape2=(k.shape2[0], *sp, k.shape2[-1]),
    )


def _global_pool(layer, k: Kernel, ctx: RuleContext) -> Kernel:
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    d = k.n_spatial
    if d == 0:
        return k
    _full_layout(layer, k, ctx)
    k = zero_padding_positions(k)
    avg = isinstance(layer, L.GlobalAvgPool)
    dt = k.nngp.dtype
    w1, w2 = _weights(k)
    if w1 is None:
        w1 = jnp.ones(k.shape1[:-1], dt)
    if w2 is None:
        w2 = jnp.ones(k.shape2[:-1], dt)
    sp_axes = tuple(range(1, d + 1))
    c1 = jnp.maximum(jnp.sum(w1, axis=sp_axes), 1) if avg else jnp.ones(w1.shape[:1], dt)
    c2 = jnp.maximum(jnp.sum(w2, axis=sp_axes), 1) if avg else jnp.ones(w2.shape[:1], dt)
    pair_axes = tuple(range(2, 2 + 2 * d))
    self_axes = tuple(range(1, 1 + 2 * d))
    scale = c1[:, None] * c2[None]
    nngp = jnp.sum(k.nngp, axis=pair_axes) / scale
    ntk = None if k.ntk is None else jnp.sum(k.ntk, axis=pair_axes) / scale
    cov1 = jnp.sum(k.cov1, axis=self_axes) / c1**2
    cov2 = None if k.cov2 is None else jnp.sum(k.cov2, axis=self_axes) / c2**2
    all_masked = lambda m: None if m is None else jnp.all(m, axis=sp_axes)
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        mask1=all_masked(k.mask1),
        mask2=all_masked(k.mask2),
        shape1=(k.shape1[0], k.shape1[-1]),
        shape2=(k.shape2[0], k.shape2[-1]),
        diagonal_spatial=True,
    )


register_rule(L.Conv, _conv)
register_rule(L.AvgPool, _pool, needs_full_spatial=True)
register_rule(L.SumPool, _pool, needs_full_spatial=True)
register_rule(L.GlobalAvgPool, _global_pool, needs_full_spatial=True)
register_rule(L.GlobalSumPool, _global_pool, needs_full_spatial=True)
