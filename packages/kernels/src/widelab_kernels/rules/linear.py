"""Kernel rules of the affine and shape layers: Dense, Identity, Flatten."""

from __future__ import annotations

import math

import jax.numpy as jnp
from widelab_core import layers as L

from ..kernel import Kernel
from ..registry import KernelError, RuleContext, register_rule


def _map(k: Kernel, f, ntk=None, **changes) -> Kernel:
    """Apply ``f`` to nngp, cov1 and cov2 (``ntk`` given separately)."""
    return k.replace(
        nngp=f(k.nngp),
        cov1=f(k.cov1),
        cov2=None if k.cov2 is None else f(k.cov2),
        ntk=ntk,
        **changes,
    )


def affine_update(k: Kernel, W_std, b_std, parameterization: str, fan_in: int, pooled=None):
    """Kernel after a random affine map of Gaussian-weighted sums.

    ``pooled`` is the (already averaged over the receptive field) input kernel
    ``(nngp, ntk, cov1, cov2)``; ``None`` means the layer acts per position (Dense).
    NTK parameterization: ``nngp' = W^2 K + b^2`` and ``ntk' = nngp' + W^2 ntk``
    (Jacot et al. 2018, Thm. 1). Standard: ``ntk' = fan_in K + [bias] + W^2 ntk``
    (Novak et al. 2020, Neural Tangents, App. "standard parameterization").
    """
    nngp, ntk, cov1, cov2 = pooled if pooled is not None else (k.nngp, k.ntk, k.cov1, k.cov2)
    b2 = 0.0 if b_std is None else b_std**2
    aff = lambda x: None if x is None else W_std**2 * x + b2
    new_nngp = aff(nngp)
    new_ntk = None
    if ntk is not None:
        if parameterization == "ntk":
            new_ntk = new_nngp + W_std**2 * ntk
        else:
            new_ntk = fan_in * nngp + W_std**2 * ntk + (0.0 if b_std is None else 1.0)
    return new_nngp, new_ntk, aff(cov1), aff(cov2)


def _dense(layer: L.Dense, k: Kernel, ctx: RuleContext) -> Kernel:
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    nngp, ntk, cov1, cov2 = affine_update(
        k, layer.W_std, layer.b_std, layer.parameterization, k.channels
    )
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        shape1=k.shape1[:-1] + (layer.out_dim,),
        shape2=k.shape2[:-1] + (layer.out_dim,),
        is_gaussian=True,
        is_input=False,
    )


def _identity(layer, k, ctx):
    return k


def mask_weights(mask, dtype):
    """``1`` at real positions, ``0`` at padding (``mask`` is ``(n, *S)``)."""
    return jnp.logical_not(mask).astype(dtype)


def diagonal_mean(x, n_batch: int, spatial, diagonal_spatial: bool, w1=None, w2=None):
    """Mean over same-position pairs of a kernel block with ``n_batch`` leading axes.

    ``w1``/``w2`` (broadcastable, shapes ``(..., *S)``) zero padded positions.
    """
    if not spatial:
        return x
    p = math.prod(spatial)
    lead = x.shape[:n_batch]
    if diagonal_spatial:
        flat = jnp.reshape(x, (*lead, p))
    else:
        flat = jnp.diagonal(jnp.reshape(x, (*lead, p, p)), axis1=-2, axis2=-1)
    if w1 is not None:
        flat = flat * jnp.reshape(w1, (*w1.shape[:n_batch], p))
    if w2 is not None:
        flat = flat * jnp.reshape(w2, (*w2.shape[:n_batch], p))
    return jnp.sum(flat, axis=-1) / p


def _flatten(layer, k: Kernel, ctx):
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    sp = k.spatial1
    if not sp:
        return k
    dt = k.nngp.dtype
    m1 = None if k.mask1 is None else mask_weights(k.mask1, dt)
    m2 = m1 if k.mask2 is None else mask_weights(k.mask2, dt)
    ds = k.diagonal_spatial
    n1m = None if m1 is None else m1[:, None]
    n2m = None if m2 is None else m2[None]
    nngp = diagonal_mean(k.nngp, 2, sp, ds, n1m, n2m)
    ntk = None if k.ntk is None else diagonal_mean(k.ntk, 2, sp, ds, n1m, n2m)
    cov1 = diagonal_mean(k.cov1, 1, sp, ds, m1)
    cov2 = None if k.cov2 is None else diagonal_mean(k.cov2, 1, k.spatial2, ds, m2)
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        mask1=None,
        mask2=None,
        shape1=(k.shape1[0], math.prod(k.shape1[1:])),
        shape2=(k.shape2[0], math.prod(k.shape2[1:])),
        diagonal_spatial=True,
    )


register_rule(L.Dense, _dense)
register_rule(L.Identity, _identity)
register_rule(L.Flatten, _flatten)
