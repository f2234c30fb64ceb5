"""Kernel rules of layers that are fixed linear maps of positions followed (or not) by a
random channel mixing: ConvTranspose, ConvLocal, ImageResize, Index (DotGeneral:
``dot_general.py``).

A transposed convolution, a resize and an index act on each spatial axis by a fixed
matrix. For a resize, ``y = M x`` along the axis, so the covariance transforms
bilinearly, ``K' = M K M^T`` on the two position axes of that spatial dimension. For a
transposed convolution with i.i.d. filter taps ``d`` the output sums, per tap, a 0/1
selection ``T_d`` of the (dilated) input, and taps are independent, so
``K' = W_std^2 / |f| sum_d T_d K T_d^T + b_std^2`` (Novak et al. 2019, "Bayesian deep
CNNs with many channels are GPs", eq. 7). The matrices are obtained by running the
finite-width layer itself on indicator inputs, so the kernel always describes exactly
the computation ``apply`` does.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core import layers as L

from ..kernel import Kernel
from ..registry import KernelError, RuleContext, register_rule
from .linear import affine_update
from .position_map_masks import MASK_FNS, with_masks
from .spatial import shift_sum


def _single(layer, k, ctx: RuleContext, masks: bool = False) -> None:
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    if not masks and (k.mask1 is not None or k.mask2 is not None):
        raise KernelError(
            layer,
            "padding masks (mask_constant) are not supported by this layer's kernel; "
            "call the kernel function without mask_constant",
            ctx.where,
        )


@functools.lru_cache(maxsize=256)
def _transpose_taps(n_in: int, window: int, stride: int, padding: str) -> np.ndarray:
    """``(window, n_out, n_in)`` 0/1 matrices: tap ``d`` of a 1-D transposed convolution."""
    layer = L.ConvTranspose(1, (window,), (stride,), padding, W_std=1.0)
    eye = np.eye(n_in)[:, :, None]
    taps = []
    with jax.ensure_compile_time_eval():
        for d in range(window):
            w = np.zeros((window, 1, 1))
            w[d] = 1.0
            y = layer.apply({"W": jnp.asarray(w)}, jnp.asarray(eye))
            taps.append(np.rint(np.asarray(y)[:, :, 0].T * math.sqrt(window)))
    return np.stack(taps)


@functools.lru_cache(maxsize=256)
def _resize_map(n_in: int, n_out: int, method: str, antialias: bool, precision, dtype: str):
    """``(1, n_out, n_in)``: the matrix of a 1-D ``jax.image.resize``."""
    layer = L.ImageResize((-1, n_out, -1), method, antialias, precision)
    with jax.ensure_compile_time_eval():
        y = layer.apply((), jnp.eye(n_in, dtype=dtype)[:, :, None])
    return np.asarray(y)[:, :, 0].T[None]


def _map_axis(x, n_batch: int, d: int, i: int, maps, full: bool):
    """Apply ``sum_t M_t (.) M_t^T`` (full) or ``sum_t M_t^2 (.)`` (diagonal) on axis ``i``."""
    if x is None:
        return None
    m = jnp.asarray(maps, x.dtype)
    a = n_batch + i
    if not full:
        x = jnp.moveaxis(x, a, -1)
        x = jnp.einsum("top,...p->...o", m * m, x, precision="highest")
        return jnp.moveaxis(x, -1, a)
    b = n_batch + d + i
    x = jnp.moveaxis(x, (a, b), (-2, -1))
    t = jnp.einsum("top,...pq->...toq", m, x, precision="highest")
    x = jnp.einsum("trq,...toq->...or", m, t, precision="highest")
    return jnp.moveaxis(x, (-2, -1), (a, b))


def _map_all(k: Kernel, maps_per_axis, scale: float = 1.0):
    d = k.n_spatial
    full = not k.diagonal_spatial

    def go(x, nb):
        if x is None:
            return None
        for i, maps in enumerate(maps_per_axis):
            if maps is not None:
                x = _map_axis(x, nb, d, i, maps, full)
        return x * scale if scale != 1.0 else x

    return go(k.nngp, 2), go(k.ntk, 2), go(k.cov1, 1), go(k.cov2, 1)


def _check_selection(layer, maps, ctx):
    for m in maps:
        if m is not None and np.any(np.count_nonzero(m, axis=-1) > 1):
            raise KernelError(
                layer,
                "mixes several input positions into one output position, which needs "
                "covariances between all pairs of positions; use diagonal_spatial=False",
                ctx.where,
            )


def _conv_transpose(layer: L.ConvTranspose, k: Kernel, ctx: RuleContext) -> Kernel:
    _single(layer, k, ctx)
    fs = tuple(layer.filter_shape)
    if k.n_spatial != len(fs):
        raise KernelError(
            layer,
            f"a {len(fs)}-D filter needs inputs with {len(fs)} spatial axes, got shape {k.shape1}",
            ctx.where,
        )
    strides = layer.strides or (1,) * len(fs)
    maps = [_transpose_taps(n, f, s, layer.padding) for n, f, s in zip(k.spatial1, fs, strides)]
    if k.diagonal_spatial:
        _check_selection(layer, maps, ctx)
    size = math.prod(fs)
    pooled = _map_all(k, maps, 1.0 / size)
    nngp, ntk, cov1, cov2 = affine_update(
        k, layer.W_std, layer.b_std, layer.parameterization, k.channels * size, pooled
    )
    sp = tuple(m.shape[1] for m in maps)
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        shape1=(k.shape1[0], *sp, layer.out_chan),
        shape2=(k.shape2[0], *sp, layer.out_chan),
        is_gaussian=True,
        is_input=False,
    )


def _spatial_diagonal(x, n_batch: int, spatial):
    p = math.prod(spatial)
    lead = x.shape[:n_batch]
    flat = jnp.diagonal(jnp.reshape(x, (*lead, p, p)), axis1=-2, axis2=-1)
    return jnp.reshape(flat, (*lead, *spatial))


def _spatial_embed(x, n_batch: int):
    lead, spatial = x.shape[:n_batch], x.shape[n_batch:]
    p = math.prod(spatial)
    eye = jnp.reshape(jnp.eye(p, dtype=x.dtype), (1,) * len(lead) + (p, p))
    flat = jnp.reshape(x, (*lead, p, 1)) * eye
    return jnp.reshape(flat, (*lead, *spatial, *spatial))


def _conv_local(layer: L.ConvLocal, k: Kernel, ctx: RuleContext) -> Kernel:
    _single(layer, k, ctx)
    fs = tuple(layer.filter_shape)
    if k.n_spatial != len(fs):
        raise KernelError(
            layer,
            f"a {len(fs)}-D filter needs inputs with {len(fs)} spatial axes, got shape {k.shape1}",
            ctx.where,
        )
    strides = layer.strides or (1,) * len(fs)
    full = not k.diagonal_spatial
    size = math.prod(fs)

    def window(x, nb, spatial):
        if x is None:
            return None
        if full:
            x = _spatial_diagonal(x, nb, spatial)
        for i in range(len(fs)):
            x = shift_sum(x, (nb + i,), fs[i], strides[i], layer.padding)
        return x / size

    pooled = (
        window(k.nngp, 2, k.spatial1),
        window(k.ntk, 2, k.spatial1),
        window(k.cov1, 1, k.spatial1),
        window(k.cov2, 1, k.spatial2),
    )
    out = affine_update(
        k, layer.W_std, layer.b_std, layer.parameterization, k.channels * size, pooled
    )
    if full:
        out = tuple(
            None if x is None else _spatial_embed(x, nb) for x, nb in zip(out, (2, 2, 1, 1))
        )
    nngp, ntk, cov1, cov2 = out
    sp = pooled[0].shape[2:]
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        shape1=(k.shape1[0], *sp, layer.out_chan),
        shape2=(k.shape2[0], *sp, layer.out_chan),
        is_gaussian=True,
        is_input=False,
    )


def _image_resize(layer: L.ImageResize, k: Kernel, ctx: RuleContext) -> Kernel:
    _single(layer, k, ctx)
    rank = len(k.shape1)
    if len(layer.shape) != rank:
        raise KernelError(
            layer,
            f"shape {layer.shape} needs inputs of rank {len(layer.shape)}, got {k.shape1}",
            ctx.where,
        )
    if layer.shape[0] != -1:
        raise KernelError(
            layer,
            f"resizing the batch axis (shape[0]={layer.shape[0]}) mixes examples; the kernel "
            "supports shape[0] = -1 only",
            ctx.where,
        )
    if layer.shape[-1] != -1:
        raise KernelError(
            layer,
            f"resizing the channel axis (shape[-1]={layer.shape[-1]}) has no infinite-width "
            "limit; use shape[-1] = -1",
            ctx.where,
        )
    dtype = jnp.dtype(k.nngp.dtype).name
    maps = []
    for n, s in zip(k.spatial1, layer.shape[1:-1]):
        if s == -1:
            maps.append(None)
        else:
            maps.append(_resize_map(n, s, layer.method, layer.antialias, layer.precision, dtype))
    if k.diagonal_spatial:
        _check_selection(layer, maps, ctx)
    nngp, ntk, cov1, cov2 = _map_all(k, maps)
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        shape1=layer.out_shape(k.shape1),
        shape2=layer.out_shape(k.shape2),
    )


def _index(layer: L.Index, k: Kernel, ctx: RuleContext) -> Kernel:
    _single(layer, k, ctx, masks=True)
    full_idx = layer.expanded(len(k.shape1))
    b, sp, ch = full_idx[0], full_idx[1:-1], full_idx[-1]
    if isinstance(b, int):
        raise KernelError(
            layer,
            f"an integer index {b} on the batch axis removes it; the kernel needs a batch "
            "axis, index it with a slice instead",
            ctx.where,
        )
    if ch != slice(None):
        raise KernelError(
            layer,
            f"indexing the channel axis ({ch!r}) has no infinite-width limit; use ':' there",
            ctx.where,
        )
    shape1 = layer.index_shape(k.shape1)
    shape2 = layer.index_shape(k.shape2)
    sp_twice = sp if k.diagonal_spatial else sp + sp

    def pick(x, lead):
        return None if x is None else x[lead + sp_twice]

    mask = lambda m: None if m is None else m[(b, *sp)]
    n_sp = len(shape1) - 2
    return k.replace(
        nngp=pick(k.nngp, (b, b)),
        ntk=pick(k.ntk, (b, b)),
        cov1=pick(k.cov1, (b,)),
        cov2=pick(k.cov2, (b,)),
        mask1=mask(k.mask1),
        mask2=mask(k.mask2),
        shape1=shape1,
        shape2=shape2,
        diagonal_spatial=k.diagonal_spatial or n_sp == 0,
    )


def _resizes_positions(layer: L.ImageResize) -> bool:
    return any(s != -1 for s in layer.shape[1:-1])


register_rule(L.ConvTranspose, with_masks(_conv_transpose, MASK_FNS[L.ConvTranspose]))
register_rule(L.ConvLocal, with_masks(_conv_local, MASK_FNS[L.ConvLocal]))
register_rule(
    L.ImageResize,
    with_masks(_image_resize, MASK_FNS[L.ImageResize]),
    needs_full_spatial=_resizes_positions,
)
register_rule(L.Index, _index)
