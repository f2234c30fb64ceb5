"""Kernel rules of the combinators and branch layers (serial, parallel, fan-out/in)."""

from __future__ import annotations

import jax.numpy as jnp
from widelab_core import layers as L

from ..kernel import Kernel
from ..registry import KernelError, RuleContext, apply_rule, needs_full_spatial, register_rule


def _serial(layer: L.Serial, k, ctx: RuleContext):
    for i, sub in enumerate(layer.layers):
        k = apply_rule(sub, k, ctx.at(f"serial[{i}]"))
    return k


def _repeat(layer: L.Repeat, k, ctx: RuleContext):
    for i in range(layer.n):
        k = apply_rule(layer.layer, k, ctx.at(f"repeat[{i}]"))
    return k


def _parallel(layer: L.Parallel, ks, ctx: RuleContext):
    if not isinstance(ks, list):
        raise KernelError(layer, "expects a list of branches (use FanOut first)", ctx.where)
    if len(ks) != len(layer.layers):
        raise KernelError(
            layer, f"has {len(layer.layers)} layers but received {len(ks)} branches", ctx.where
        )
    return [
        apply_rule(sub, ki, ctx.at(f"parallel[{i}]"))
        for i, (sub, ki) in enumerate(zip(layer.layers, ks))
    ]


def _fan_out(layer: L.FanOut, k, ctx: RuleContext):
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    return [k] * layer.num


def _branches(layer, ks, ctx) -> list[Kernel]:
    if not isinstance(ks, list) or not ks:
        raise KernelError(layer, "expects a non-empty list of branches", ctx.where)
    shapes = [k.shape1 for k in ks]
    layouts = {k.diagonal_spatial for k in ks}
    if len(layouts) != 1:
        raise KernelError(layer, "branches have different spatial layouts", ctx.where)
    return ks, shapes


def _require_gaussian(layer, ks, ctx) -> None:
    # Branches from one FanOut are independent only if each ends in its own random
    # affine layer (zero-mean Gaussian); otherwise cross-covariances would be missing.
    if len(ks) > 1 and not all(k.is_gaussian for k in ks):
        bad = [i for i, k in enumerate(ks) if not k.is_gaussian]
        raise KernelError(
            layer,
            f"branches {bad} are not zero-mean Gaussian processes, so their cross-"
            "covariances do not vanish; end every branch with a Dense or Conv layer",
            ctx.where,
        )


def _sum_opt(xs):
    if any(x is None for x in xs):
        return None
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _and_masks(ms):
    if any(m is None for m in ms):
        return None
    out = ms[0]
    for m in ms[1:]:
        out = out & m
    return out


def _fan_in_sum(layer, ks, ctx):
    ks, shapes = _branches(layer, ks, ctx)
    if any(s != shapes[0] for s in shapes):
        raise KernelError(layer, f"branches must have equal shapes, got {shapes}", ctx.where)
    _require_gaussian(layer, ks, ctx)
    k0 = ks[0]
    return k0.replace(
        nngp=_sum_opt([k.nngp for k in ks]),
        ntk=_sum_opt([k.ntk for k in ks]),
        cov1=_sum_opt([k.cov1 for k in ks]),
        cov2=_sum_opt([k.cov2 for k in ks]),
        mask1=_and_masks([k.mask1 for k in ks]),
        mask2=_and_masks([k.mask2 for k in ks]),
        is_gaussian=all(k.is_gaussian for k in ks),
        is_input=False,
    )


def _fan_in_prod(layer, ks, ctx):
    """Elementwise product of branches: ``K = prod_i K_i`` and, by the product rule,
    ``Theta = sum_i Theta_i prod_{j != i} K_j`` (Neural Tangents' ``FanInProd``).

    Exact when the branches are independent given the common input, i.e. every branch
    but at most one has its own random weights after the ``FanOut`` (for example each
    branch starts with a ``Dense``/``Conv`` layer); they may end in any nonlinearity.
    Then ``E[prod_i f_i(x) f_i(x')] = prod_i E[f_i(x) f_i(x')]``, and the cross-branch
    NTK terms vanish because the own weights are zero-mean and independent. Branches
    without own weights (``parallel(Relu(), Erf())`` right after a ``FanOut``) are
    dependent, and the product is then not their kernel; as in Neural Tangents this is
    not detected.
    """
    ks, shapes = _branches(layer, ks, ctx)
    if any(s != shapes[0] for s in shapes):
        raise KernelError(layer, f"branches must have equal shapes, got {shapes}", ctx.where)

    def prod(xs):
        if any(x is None for x in xs):
            return None
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out

    nngps = [k.nngp for k in ks]
    ntk = None
    if all(k.ntk is not None for k in ks):
        # product rule: sum_i ntk_i * prod_{j != i} nngp_j
        ntk = _sum_opt([prod([ks[i].ntk] + nngps[:i] + nngps[i + 1 :]) for i in range(len(ks))])
    return ks[0].replace(
        nngp=prod(nngps),
        ntk=ntk,
        cov1=prod([k.cov1 for k in ks]),
        cov2=prod([k.cov2 for k in ks]),
        is_gaussian=len(ks) == 1 and ks[0].is_gaussian,
        is_input=False,
    )


def _fan_in_concat(layer, ks, ctx):
    ks, shapes = _branches(layer, ks, ctx)
    rank = len(shapes[0])
    ax = layer.axis % rank
    if ax == 0:
        raise KernelError(
            layer,
            f"concatenation along the batch axis (axis={layer.axis}) mixes examples of "
            "different inputs; the kernel supports the channel axis and spatial axes",
            ctx.where,
        )
    if ax != rank - 1:
        return _fan_in_concat_spatial(layer, ks, shapes, ax, ctx)
    if any(s[:-1] != shapes[0][:-1] for s in shapes):
        raise KernelError(layer, f"branches must agree on all axes but -1, got {shapes}", ctx.where)
    widths = [s[-1] for s in shapes]
    total = sum(widths)

    def mean(xs):
        if any(x is None for x in xs):
            return None
        return _sum_opt([x * (w / total) for x, w in zip(xs, widths)])

    k0 = ks[0]
    shape1 = k0.shape1[:-1] + (total,)
    shape2 = k0.shape2[:-1] + (sum(k.shape2[-1] for k in ks),)
    return k0.replace(
        nngp=mean([k.nngp for k in ks]),
        ntk=mean([k.ntk for k in ks]),
        cov1=mean([k.cov1 for k in ks]),
        cov2=mean([k.cov2 for k in ks]),
        shape1=shape1,
        shape2=shape2,
        # Channel groups keep their own kernels; only their width-weighted mean is
        # tracked, so a nonlinearity must not follow before a new affine layer.
        is_gaussian=False,
        is_input=False,
    )


def _block_diagonal(xs, a: int, b: int):
    """Arrange ``xs`` as diagonal blocks on axes ``a`` (rows) and ``b`` (columns)."""
    if any(x is None for x in xs):
        return None
    rows = [x.shape[a] for x in xs]
    cols = [x.shape[b] for x in xs]
    out = []
    for i, x in enumerate(xs):
        pads = [(0, 0)] * x.ndim
        pads[a] = (sum(rows[:i]), sum(rows[i + 1 :]))
        pads[b] = (sum(cols[:i]), sum(cols[i + 1 :]))
        out.append(jnp.pad(x, pads))
    return _sum_opt(out)


def _concat_opt(xs, axis: int):
    if any(x is None for x in xs):
        return None
    return jnp.concatenate(xs, axis=axis)


def _fan_in_concat_spatial(layer, ks, shapes, ax: int, ctx):
    """Concatenation along spatial axis ``ax``: positions of branch ``i`` keep branch
    ``i``'s covariances; positions of different (independent) branches are uncorrelated."""
    for k in ks:
        for s, s0 in ((k.shape1, ks[0].shape1), (k.shape2, ks[0].shape2)):
            if s[:ax] + s[ax + 1 :] != s0[:ax] + s0[ax + 1 :]:
                raise KernelError(
                    layer,
                    f"branches must agree on all axes but {layer.axis}, got {shapes}",
                    ctx.where,
                )
    k0 = ks[0]
    i = ax - 1  # spatial index
    d = k0.n_spatial
    if k0.diagonal_spatial:
        # Same-position covariances only: each position belongs to one branch.
        nngp = _concat_opt([k.nngp for k in ks], 2 + i)
        ntk = _concat_opt([k.ntk for k in ks], 2 + i)
        cov1 = _concat_opt([k.cov1 for k in ks], 1 + i)
        cov2 = _concat_opt([k.cov2 for k in ks], 1 + i)
    else:
        _require_gaussian(layer, ks, ctx)
        nngp = _block_diagonal([k.nngp for k in ks], 2 + i, 2 + d + i)
        ntk = _block_diagonal([k.ntk for k in ks], 2 + i, 2 + d + i)
        cov1 = _block_diagonal([k.cov1 for k in ks], 1 + i, 1 + d + i)
        cov2 = _block_diagonal([k.cov2 for k in ks], 1 + i, 1 + d + i)

    def masks(ms, shape_of):
        if all(m is None for m in ms):
            return None
        full = [jnp.zeros(shape_of(k)[:-1], bool) if m is None else m for k, m in zip(ks, ms)]
        return jnp.concatenate(full, axis=ax)

    def out_shape(get):
        s = list(get(k0))
        s[ax] = sum(get(k)[ax] for k in ks)
        return tuple(s)

    return k0.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        mask1=masks([k.mask1 for k in ks], lambda k: k.shape1),
        mask2=masks([k.mask2 for k in ks], lambda k: k.shape2),
        shape1=out_shape(lambda k: k.shape1),
        shape2=out_shape(lambda k: k.shape2),
        is_gaussian=all(k.is_gaussian for k in ks),
        is_input=False,
    )


register_rule(
    L.Serial, _serial, needs_full_spatial=lambda s: any(map(needs_full_spatial, s.layers))
)
register_rule(
    L.Parallel, _parallel, needs_full_spatial=lambda s: any(map(needs_full_spatial, s.layers))
)
register_rule(L.Repeat, _repeat, needs_full_spatial=lambda r: needs_full_spatial(r.layer))
register_rule(L.FanOut, _fan_out)
register_rule(L.FanInSum, _fan_in_sum)
register_rule(L.FanInProd, _fan_in_prod)
register_rule(L.FanInConcat, _fan_in_concat)
