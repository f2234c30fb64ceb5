"""Structured derivatives for the empirical NTK (Novak et al. 2022, "Fast Finite Width
Neural Tangent Kernel", ICML, Sec. 3.3 and 4).

For a weight ``W`` that enters the network only through one linear map
``y = X W`` (a matmul, or a convolution where ``X`` holds the input patches), the
chain rule gives ``df_o/dW_ij = sum_r X_ri G_o,rj`` with ``G = df/dy``, so its NTK term is

    Theta_W(o1, o2) = sum_{r, s} (X1_r . X2_s) (G1_{o1, r} . G2_{o2, s})     (eq. 1)

and the Jacobian ``df/dW`` need never be formed. The four factors are contracted in
whichever order costs fewest operations (``jnp.einsum``'s optimiser): pairwise
products as above when weights are large, or the per-output weight Jacobian
``sum_r X_r G_o,r`` first when it is small. Weights used in any other way are
handled by Jacobian contraction, so the result is exact for every function.

The function is read as a ``jaxpr``; ``G`` comes from reverse-mode differentiation
with respect to a zero perturbation added to each ``y``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend.core import Literal

_LINEAR = ("dot_general", "conv_general_dilated")


def _uses(jaxpr) -> dict:
    count: dict = {}
    for eqn in jaxpr.eqns:
        for v in eqn.invars:
            if not isinstance(v, Literal):
                count[v] = count.get(v, 0) + 1
    for v in jaxpr.outvars:
        if not isinstance(v, Literal):
            count[v] = count.get(v, 0) + 1
    return count


def _dense_layout(eqn, w_pos: int):
    """For ``dot_general`` with the weight at ``w_pos``: None if unsupported, else the
    permutations that put ``X`` as ``(rows..., in...)`` and ``y`` as
    ``(rows..., out...)``."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    if lb or rb:
        return None
    x_aval = eqn.invars[1 - w_pos].aval
    w_aval = eqn.invars[w_pos].aval
    x_con = lc if w_pos == 1 else rc
    x_free = [d for d in range(x_aval.ndim) if d not in x_con]
    w_con = rc if w_pos == 1 else lc
    n_w_free = w_aval.ndim - len(w_con)
    n_x_free = len(x_free)
    x_perm = (*x_free, *x_con)
    # y = (lhs free..., rhs free...)
    if w_pos == 1:
        y_perm = tuple(range(n_x_free + n_w_free))
    else:
        y_perm = (*range(n_w_free, n_w_free + n_x_free), *range(n_w_free))
    return ("dense", x_perm, y_perm, n_x_free)


def _conv_layout(eqn, w_pos: int):
    p = eqn.params
    if w_pos != 1 or p["feature_group_count"] != 1 or p["batch_group_count"] != 1:
        return None
    return ("conv", None, None, None)


def find_linear_weights(jaxpr, n_params: int) -> dict[int, tuple[int, int, tuple]]:
    """Map ``param leaf index -> (eqn index, weight operand position, layout)`` for
    leaves used exactly once, directly, as a weight of a matmul or convolution."""
    leaf_of = {v: i for i, v in enumerate(jaxpr.invars[:n_params])}
    uses = _uses(jaxpr)
    found = {}
    for e, eqn in enumerate(jaxpr.eqns):
        if eqn.primitive.name not in _LINEAR:
            continue
        for pos in (0, 1):
            v = eqn.invars[pos]
            if isinstance(v, Literal) or v not in leaf_of or uses.get(v, 0) != 1:
                continue
            other = eqn.invars[1 - pos]
            if not isinstance(other, Literal) and other in leaf_of:
                continue
            if eqn.primitive.name == "dot_general":
                lay = _dense_layout(eqn, pos)
            else:
                lay = _conv_layout(eqn, pos)
            if lay is not None:
                found[leaf_of[v]] = (e, pos, lay)
    return found


def _eval_tapped(jaxpr, consts, args, taps: dict[int, Any], record: set[int]):
    """Evaluate ``jaxpr``, adding ``taps[e]`` to the output of equation ``e`` and
    recording the inputs of the equations in ``record``."""
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    seen = {}
    for e, eqn in enumerate(jaxpr.eqns):
        invals = [read(v) for v in eqn.invars]
        if e in record:
            seen[e] = invals
        bind_params = eqn.primitive.get_bind_params(eqn.params)
        if isinstance(bind_params, tuple):  # older JAX: (subfuns, params)
            subfuns, bind_params = bind_params
        else:
            subfuns = []
        with eqn.ctx.manager:
            ans = eqn.primitive.bind(*subfuns, *invals, **bind_params)
        if eqn.primitive.multiple_results:
            for v, a in zip(eqn.outvars, ans):
                env[v] = a
        else:
            env[eqn.outvars[0]] = ans + taps[e] if e in taps else ans
    return [read(v) for v in jaxpr.outvars], seen


def _rows_in(eqn, lay, invals, w_pos):
    """The input factor ``X`` as ``(rows, in)``."""
    x = invals[1 - w_pos]
    kind = lay[0]
    if kind == "dense":
        _, x_perm, _, n_free = lay
        xt = jnp.transpose(x, x_perm)
        rows = math.prod(xt.shape[:n_free])
        return jnp.reshape(xt, (rows, -1))
    p = eqn.params
    dn = p["dimension_numbers"]
    patches = jax.lax.conv_general_dilated_patches(
        x,
        filter_shape=tuple(invals[1].shape[d] for d in dn.rhs_spec[2:]),
        window_strides=p["window_strides"],
        padding=p["padding"],
        lhs_dilation=p["lhs_dilation"],
        rhs_dilation=p["rhs_dilation"],
        dimension_numbers=dn,
        precision=jax.lax.Precision.HIGHEST,
    )
    # patches come out in the output layout with the patch as the feature axis
    perm = (dn.out_spec[0], *dn.out_spec[2:], dn.out_spec[1])
    pt = jnp.transpose(patches, perm)
    return jnp.reshape(pt, (-1, pt.shape[-1]))


def _rows_out(eqn, lay, g, n_out: int):
    """The cotangent factor ``G`` (``(*out, *y)``) as ``(*out, rows, out_features)``."""
    lead = tuple(range(n_out))
    if lay[0] == "dense":
        _, _, y_perm, n_free = lay
        gt = jnp.transpose(g, (*lead, *(n_out + d for d in y_perm)))
        shp = gt.shape[n_out:]
        return jnp.reshape(gt, (*gt.shape[:n_out], math.prod(shp[:n_free]), -1))
    dn = eqn.params["dimension_numbers"]
    perm = (dn.out_spec[0], *dn.out_spec[2:], dn.out_spec[1])
    gt = jnp.transpose(g, (*lead, *(n_out + d for d in perm)))
    return jnp.reshape(gt, (*gt.shape[:n_out], -1, gt.shape[-1]))


def unit_factors(unit_fn: Callable, params: Any, x: Any):
    """Per-weight factors ``(X, G)`` of one unit (one example, or the whole batch).

    Args:
        unit_fn: ``unit_fn(params, x) -> outputs`` (an array).
        params: parameter pytree.
        x: the unit's input.

    Returns:
        ``(factors, rest)``: ``factors`` maps leaf index to ``(X (rows, in),
        G (*out, rows, out_features))``; ``rest`` lists the leaf indices not covered
        (handled by Jacobian contraction).
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    n = len(leaves)

    def flat_fn(*args):
        return unit_fn(jax.tree_util.tree_unflatten(treedef, list(args[:n])), args[n])

    closed = jax.make_jaxpr(flat_fn)(*leaves, x)
    jaxpr, consts = closed.jaxpr, closed.consts
    if len(jaxpr.outvars) != 1:
        return {}, list(range(n))
    found = find_linear_weights(jaxpr, n)
    if not found:
        return {}, list(range(n))
    eqn_ids = sorted({e for e, _, _ in found.values()})
    zeros = {}
    for e in eqn_ids:
        aval = jaxpr.eqns[e].outvars[0].aval
        zeros[e] = jnp.zeros(aval.shape, aval.dtype)

    def run(taps):
        outs, seen = _eval_tapped(jaxpr, consts, [*leaves, x], taps, set(eqn_ids))
        return outs[0], seen

    (out, seen) = run(zeros)
    grads = jax.jacrev(lambda t: run(t)[0])(zeros)
    factors = {}
    for leaf, (e, pos, lay) in found.items():
        eqn = jaxpr.eqns[e]
        xf = _rows_in(eqn, lay, seen[e], pos)
        gf = _rows_out(eqn, lay, grads[e], out.ndim)
        factors[leaf] = (xf, gf)
    rest = [i for i in range(n) if i not in found]
    return factors, rest


__all__ = ["find_linear_weights", "unit_factors"]
