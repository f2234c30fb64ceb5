"""Finite-width (empirical) NNGP and NTK of any ``apply(params, x)``.

``ntk(x1, x2) = J(x1) J(x2)^T`` with ``J`` the Jacobian of the outputs with respect to
all parameters (Jacot et al. 2018, eq. 2); ``nngp(x1, x2) = f(x1) f(x2)^T``. Both are
averaged over ``trace_axes`` of the output (default: the channel axis) and keep only
the diagonal of ``diagonal_axes``, as in Neural Tangents' ``empirical_kernel_fn``.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def _canon(axes: Sequence[int] | int, ndim: int) -> tuple[int, ...]:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for outputs of rank {ndim}")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


def _contract_spec(ndim: int, trace_axes, diagonal_axes, extra: str = ""):
    """Einsum spec pairing output axes of x1 and x2: traced axes summed, diagonal kept once."""
    trace = _canon(trace_axes, ndim)
    diag = _canon(diagonal_axes, ndim)
    if set(trace) & set(diag):
        raise ValueError(f"trace_axes {trace} and diagonal_axes {diag} overlap")
    letters = iter(string.ascii_letters)
    s1, s2, out = [], [], []
    for i in range(ndim):
        a = next(letters)
        if i in trace:
            s1.append(a)
            s2.append(a)
        elif i in diag:
            s1.append(a)
            s2.append(a)
            out.append(a)
        else:
            b = next(letters)
            s1.append(a)
            s2.append(b)
            out.extend([a, b])
    return "".join(s1) + extra, "".join(s2) + extra, "".join(out), trace


def _check_diagonal(shape1, shape2, diagonal_axes) -> None:
    for a in _canon(diagonal_axes, len(shape1)):
        if shape1[a] != shape2[a]:
            raise ValueError(
                f"output axis {a} is in diagonal_axes but has size {shape1[a]} on x1 and "
                f"{shape2[a]} on x2"
            )


def _trace_size(shape, trace) -> int:
    size = 1
    for a in trace:
        size *= shape[a]
    return size


def empirical_nngp(
    apply_fn: ApplyFn,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    kwargs1: dict | None = None,
    kwargs2: dict | None = None,
) -> jax.Array:
    """Empirical NNGP ``f(x1) . f(x2) / |traced|`` of one network draw.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs`` with a leading batch axis.
        params: the parameters.
        x1: first inputs.
        x2: second inputs (``None``: ``x1``).
        trace_axes: output axes averaged over (default the channel axis).
        diagonal_axes: output axes of which only the diagonal is kept (e.g. ``(0,)``).
        kwargs1: keyword arguments of ``apply_fn`` on ``x1``.
        kwargs2: the same on ``x2`` (default ``kwargs1``).

    Returns:
        Array with one axis per diagonal axis and two per other non-traced axis
        (``(n1, n2)`` for ``(n, k)`` outputs and the defaults).
    """
    kwargs1 = kwargs1 or {}
    f1 = apply_fn(params, x1, **kwargs1)
    f2 = f1 if x2 is None else apply_fn(params, x2, **(kwargs1 if kwargs2 is None else kwargs2))
    _check_diagonal(f1.shape, f2.shape, diagonal_axes)
    a, b, out, trace = _contract_spec(f1.ndim, trace_axes, diagonal_axes)
    return jnp.einsum(f"{a},{b}->{out}", f1, f2) / _trace_size(f1.shape, trace)


IMPLEMENTATIONS = ("jacobian", "ntvp", "structured", "auto")


def _vmap_spec(vmap_axes) -> tuple[int | None, int | None, dict]:
    """``(input batch axis, output batch axis, keyword-argument axes)`` or Nones."""
    if vmap_axes is None:
        return None, None, {}
    if isinstance(vmap_axes, int):
        return vmap_axes, vmap_axes, {}
    if isinstance(vmap_axes, tuple) and len(vmap_axes) == 3:
        i, o, kw = vmap_axes
        if (i is None) != (o is None) or not (i is None or isinstance(i, int)):
            raise ValueError(
                f"vmap_axes: input and output axes must both be ints or both None, got {vmap_axes}"
            )
        return i, o, dict(kw or {})
    raise ValueError(
        f"vmap_axes must be None, an int or (in_axes, out_axes, kwargs_axes), got {vmap_axes!r}"
    )


class _Side:
    """One side (``x1`` or ``x2``) of a kernel: the function of the parameters and, with
    ``vmap_axes``, of one example at a time."""

    def __init__(self, apply_fn, x, kwargs, vmap):
        self.apply_fn, self.x, self.kw = apply_fn, x, dict(kwargs or {})
        self.in_ax, self.out_ax, kw_ax = vmap
        self.kw_axes = {k: kw_ax.get(k) for k in self.kw}

    def full(self, p):
        return self.apply_fn(p, self.x, **self.kw)

    def unit(self, p, xi, kwi):
        """Outputs of one example (batch axis removed)."""
        xe = jnp.expand_dims(xi, self.in_ax)
        kwe = {
            k: v if self.kw_axes[k] is None else jnp.expand_dims(v, self.kw_axes[k])
            for k, v in kwi.items()
        }
        return jnp.squeeze(self.apply_fn(p, xe, **kwe), self.out_ax)

    def per_unit(self, fn):
        """``vmap`` of ``fn(p, xi, kwi)`` over the examples (result: example axis first)."""
        return jax.vmap(fn, in_axes=(None, self.in_ax, self.kw_axes))

    @property
    def vmapped(self) -> bool:
        return self.in_ax is not None


def _leaf_jacobians(side: _Side, params, ids=None) -> list:
    """``d out / d leaf`` shaped ``(*out, *leaf.shape)`` for the leaves ``ids``."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    ids = list(range(len(leaves))) if ids is None else list(ids)

    def sub(chosen, fn):
        def g(sel, *rest):
            full = list(leaves)
            for i, v in zip(ids, sel):
                full[i] = v
            return fn(jax.tree_util.tree_unflatten(treedef, full), *rest)

        return g

    sel = [leaves[i] for i in ids]
    if not side.vmapped:
        return list(jax.jacrev(sub(sel, lambda p: side.full(p)))(sel))
    jac = side.per_unit(lambda p, xi, kwi: jax.jacrev(sub(sel, side.unit))(p, xi, kwi))
    js = jac(sel, side.x, side.kw)
    return [jnp.moveaxis(j, 0, side.out_ax) for j in js]


def _contract_jacobians(j1, j2, a, b, out, ndim):
    total = None
    for l1, l2 in zip(j1, j2):
        p_ndim = l1.ndim - ndim
        pl = string.ascii_letters[-p_ndim:] if p_ndim else ""
        term = jnp.einsum(f"{a}{pl},{b}{pl}->{out}", l1, l2)
        total = term if total is None else total + term
    return total


def _ntk_jacobian(s1, s2, params, same, a, b, out, ndim):
    j1 = _leaf_jacobians(s1, params)
    j2 = j1 if same else _leaf_jacobians(s2, params)
    if not j1:
        raise ValueError("empirical_ntk: the network has no parameters")
    return _contract_jacobians(j1, j2, a, b, out, ndim)


def _ntk_ntvp(s1, s2, params, a, b, out, out2_shape):
    """Columns ``J1 (J2^T e)`` for every basis cotangent ``e`` of the outputs on ``x2``."""
    if s2.vmapped:

        def cols_of_example(p, xi, kwi):
            o, vjp = jax.vjp(lambda q: s2.unit(q, xi, kwi), p)
            eye = jnp.reshape(jnp.eye(o.size, dtype=o.dtype), (o.size, *o.shape))
            tangents = jax.vmap(lambda c: vjp(c)[0])(eye)
            cols = jax.vmap(lambda t: jax.jvp(s1.full, (p,), (t,))[1])(tangents)
            return jnp.reshape(cols, (*o.shape, *cols.shape[1:]))

        cols = s2.per_unit(cols_of_example)(params, s2.x, s2.kw)  # (n2, *o2, *out1)
        cols = jnp.moveaxis(cols, 0, s2.out_ax)  # (*out2, *out1)
    else:
        o2, vjp2 = jax.vjp(s2.full, params)
        eye = jnp.eye(o2.size, dtype=o2.dtype)

        def column(ct):
            (tangent,) = vjp2(jnp.reshape(ct, o2.shape))
            return jax.jvp(s1.full, (params,), (tangent,))[1]

        cols = jax.lax.map(column, eye)
        cols = jnp.reshape(cols, (*o2.shape, *cols.shape[1:]))
    n2 = len(out2_shape)
    full = jnp.moveaxis(cols, tuple(range(n2)), tuple(range(cols.ndim - n2, cols.ndim)))
    return jnp.einsum(f"{a}{b}->{out}", full)


def _factors(side: _Side, params):
    from .empirical_structured import unit_factors

    if not side.vmapped:
        return unit_factors(side.full_fn, params, side.x)
    holder = {}

    def one(p, xi, kwi):
        f, rest = unit_factors(lambda q, z: side.unit(q, z, kwi), p, xi)
        holder["rest"] = rest
        return f

    f = side.per_unit(one)(params, side.x, side.kw)
    f = {k: (xf, jnp.moveaxis(gf, 0, side.out_ax)) for k, (xf, gf) in f.items()}
    return f, holder["rest"]


def _ntk_structured(s1, s2, params, same, a, b, out, ndim):
    s1.full_fn = lambda p, x: s1.apply_fn(p, x, **s1.kw)
    s2.full_fn = lambda p, x: s2.apply_fn(p, x, **s2.kw)
    f1, rest1 = _factors(s1, params)
    f2, rest2 = (f1, rest1) if same else _factors(s2, params)
    common = sorted(set(f1) & set(f2))
    rest = sorted(set(range(len(jax.tree_util.tree_leaves(params)))) - set(common))
    total = None
    u1 = a[s1.out_ax] if s1.vmapped else ""
    u2 = b[s2.out_ax] if s2.vmapped else ""
    for leaf in common:
        x1, g1 = f1[leaf]
        x2, g2 = f2[leaf]
        term = jnp.einsum(f"{u1}WX,{u2}YX,{a}WZ,{b}YZ->{out}", x1, x2, g1, g2, optimize="optimal")
        total = term if total is None else total + term
    if rest:
        j1 = _leaf_jacobians(s1, params, rest)
        j2 = j1 if same else _leaf_jacobians(s2, params, rest)
        term = _contract_jacobians(j1, j2, a, b, out, ndim)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("empirical_ntk: the network has no parameters")
    return total


def empirical_ntk(
    apply_fn: ApplyFn,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian",
    vmap_axes: Any = None,
    kwargs1: dict | None = None,
    kwargs2: dict | None = None,
) -> jax.Array:
    """Empirical NTK ``J(x1) J(x2)^T / |traced|`` of one network draw (Jacot et al. 2018, eq. 2).

    Three ways of computing the same matrix (Novak et al. 2022, "Fast Finite Width
    Neural Tangent Kernel", Sec. 3), plus a choice among them by cost:

    * ``"jacobian"``: contract the two Jacobians leaf by leaf (Sec. 3.1).
    * ``"ntvp"``: columns from NTK-vector products ``J1 (J2^T v)``, no Jacobian stored
      (Sec. 3.2); better when parameters far outnumber outputs.
    * ``"structured"``: structured derivatives (Sec. 3.3): for weights entering
      through a matmul or a convolution, ``(X1 . X2)(G1 . G2)`` with ``G`` the
      cotangent of the layer's output, contracted in the cheapest order; other
      parameters by Jacobian contraction.
    * ``"auto"``: whichever of the three the compiler's cost analysis says needs
      the fewest floating-point operations for these shapes.

    Args:
        apply_fn: ``apply_fn(params, x, **kwargs) -> outputs``.
        params: the parameters (any pytree).
        x1: first inputs.
        x2: second inputs (``None``: ``x1``).
        trace_axes: output axes averaged over.
        diagonal_axes: output axes of which only the diagonal is kept.
        implementation: one of :data:`IMPLEMENTATIONS`.
        vmap_axes: ``None``, an int (the batch axis of inputs and outputs), or
            ``(in_axis, out_axis, kwargs_axes)``: ``apply_fn`` treats examples along
            that axis independently, so derivatives are taken one example at a time
            (same result, far less work for ``"ntvp"`` and ``"structured"``).
        kwargs1: keyword arguments of ``apply_fn`` on ``x1``.
        kwargs2: the same on ``x2`` (default ``kwargs1``).

    Returns:
        The NTK block, shaped as in :func:`empirical_nngp`.

    Raises:
        ValueError: unknown implementation, bad axes or ``vmap_axes``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(8), L.Relu(), L.Dense(1))
        >>> _, p = net.init(jax.random.key(0), (3, 2))
        >>> x = jnp.ones((3, 2))
        >>> a = empirical_ntk(net.apply, p, x, implementation="jacobian")
        >>> b = empirical_ntk(net.apply, p, x, implementation="structured", vmap_axes=0)
        >>> bool(jnp.allclose(a, b, rtol=1e-5))
        True
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"empirical_ntk: implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
        )
    vmap = _vmap_spec(vmap_axes)
    same = x2 is None
    s1 = _Side(apply_fn, x1, kwargs1, vmap)
    s2 = s1 if same else _Side(apply_fn, x2, kwargs1 if kwargs2 is None else kwargs2, vmap)
    out_shape = jax.eval_shape(s1.full, params).shape
    out2_shape = out_shape if same else jax.eval_shape(s2.full, params).shape
    if not same:
        _check_diagonal(out_shape, out2_shape, diagonal_axes)
    ndim = len(out_shape)
    if vmap[1] is not None:
        vmap = (vmap[0], vmap[1] % ndim, vmap[2])
        s1.out_ax = vmap[1]
        s2.out_ax = vmap[1]
    a, b, out, trace = _contract_spec(ndim, trace_axes, diagonal_axes)
    if implementation == "auto":
        implementation = _cheapest(
            apply_fn, params, x1, x2, trace_axes, diagonal_axes, vmap_axes, kwargs1, kwargs2
        )
    if implementation == "jacobian":
        total = _ntk_jacobian(s1, s2, params, same, a, b, out, ndim)
    elif implementation == "ntvp":
        total = _ntk_ntvp(s1, s2, params, a, b, out, out2_shape)
    else:
        total = _ntk_structured(s1, s2, params, same, a, b, out, ndim)
    return total / _trace_size(out_shape, trace)


def _cheapest(apply_fn, params, x1, x2, trace_axes, diagonal_axes, vmap_axes, kw1, kw2) -> str:
    """The implementation with the fewest flops in XLA's cost analysis."""
    spec = lambda t: jax.tree_util.tree_map(
        lambda v: jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)), t
    )
    best, best_flops = "jacobian", None
    for impl in ("jacobian", "ntvp", "structured"):
        fn = lambda p, a, b, k1, k2, impl=impl: empirical_ntk(
            apply_fn,
            p,
            a,
            b,
            trace_axes=trace_axes,
            diagonal_axes=diagonal_axes,
            implementation=impl,
            vmap_axes=vmap_axes,
            kwargs1=k1,
            kwargs2=k2,
        )
        cost = jax.jit(fn).lower(spec(params), spec(x1), spec(x2), spec(kw1), spec(kw2))
        cost = cost.compile().cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0] if cost else {}
        flops = float((cost or {}).get("flops", float("inf")))
        if best_flops is None or flops < best_flops:
            best, best_flops = impl, flops
    return best


def ntk_vector_product(
    apply_fn: ApplyFn,
    params: Any,
    x1: jax.Array,
    x2: jax.Array,
    v: jax.Array,
    apply_fn2: ApplyFn | None = None,
) -> jax.Array:
    """``Theta(x1, x2) v = J(x1) (J(x2)^T v)`` without forming the NTK or a Jacobian.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``.
        params: the parameters.
        x1: inputs of the result.
        x2: inputs ``v`` lives on.
        v: cotangent with the shape of ``apply_fn(params, x2)``.
        apply_fn2: the function applied to ``x2`` (default ``apply_fn``; e.g. the same
            network with another dropout key).

    Returns:
        Array shaped like ``apply_fn(params, x1)`` (untraced: all output axes kept).
    """
    f2 = apply_fn if apply_fn2 is None else apply_fn2
    _, vjp2 = jax.vjp(lambda p: f2(p, x2), params)
    (tangent,) = vjp2(v)
    return jax.jvp(lambda p: apply_fn(p, x1), (params,), (tangent,))[1]


def empirical_ntk_fn(
    apply_fn: ApplyFn,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian",
    vmap_axes: Any = None,
) -> Callable[..., jax.Array]:
    """Neural Tangents' calling form ``ntk_fn(x1, x2, params)`` of :func:`empirical_ntk`.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``.
        trace_axes: output axes averaged over.
        diagonal_axes: output axes of which only the diagonal is kept.
        implementation: one of :data:`IMPLEMENTATIONS` (see :func:`empirical_ntk`).
        vmap_axes: see :func:`empirical_ntk`.

    Returns:
        ``ntk_fn(x1, x2, params)`` (``x2=None``: ``x1``), jittable. With
        ``implementation="auto"`` the choice is made once per input shapes.

    Raises:
        ValueError: unknown implementation or ``vmap_axes`` (here, not at the first call).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"empirical_ntk_fn: implementation must be one of {IMPLEMENTATIONS}, "
            f"got {implementation!r}"
        )
    _vmap_spec(vmap_axes)
    chosen: dict = {}

    def ntk_fn(x1, x2, params, kwargs1=None, kwargs2=None):
        impl = implementation
        if impl == "auto":
            key = jax.tree_util.tree_map(
                lambda v: (jnp.shape(v), str(jnp.result_type(v))), (x1, x2, params)
            )
            key = str(key)
            if key not in chosen:
                chosen[key] = _cheapest(
                    apply_fn, params, x1, x2, trace_axes, diagonal_axes, vmap_axes, kwargs1, kwargs2
                )
            impl = chosen[key]
        return empirical_ntk(
            apply_fn,
            params,
            x1,
            x2,
            trace_axes=trace_axes,
            diagonal_axes=diagonal_axes,
            implementation=impl,
            vmap_axes=vmap_axes,
            kwargs1=kwargs1,
            kwargs2=kwargs2,
        )

    return ntk_fn


def empirical_nngp_fn(
    apply_fn: ApplyFn, trace_axes: Sequence[int] = (-1,), diagonal_axes: Sequence[int] = ()
) -> Callable[..., jax.Array]:
    """Neural Tangents' calling form ``nngp_fn(x1, x2, params)`` of :func:`empirical_nngp`.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``.
        trace_axes: output axes averaged over.
        diagonal_axes: output axes of which only the diagonal is kept.

    Returns:
        ``nngp_fn(x1, x2, params)`` (``x2=None``: ``x1``), jittable.
    """

    def nngp_fn(x1, x2, params):
        return empirical_nngp(
            apply_fn, params, x1, x2, trace_axes=trace_axes, diagonal_axes=diagonal_axes
        )

    return nngp_fn


def with_pattern(pattern, kwargs1, kwargs2, x2, who: str = "empirical kernel") -> tuple[dict, dict]:
    """``kwargs1``/``kwargs2`` (``kwargs2`` None: ``kwargs1``) with the graphs
    ``pattern=(pattern1, pattern2)`` added (``pattern`` None: unchanged)."""
    kw1 = dict(kwargs1 or {})
    kw2 = dict(kw1 if kwargs2 is None else kwargs2)
    if pattern is None:
        return kw1, kw2
    if not isinstance(pattern, list | tuple) or len(pattern) != 2:
        raise ValueError(
            f"{who}: pattern must be a pair (pattern1, pattern2), got {type(pattern).__name__}"
        )
    p1, p2 = pattern
    if p2 is None and x2 is None:
        p2 = p1
    if p1 is None or p2 is None:
        raise ValueError(
            f"{who}: pattern has one graph given and one None; give both, or "
            "(pattern1, None) when x2 is None"
        )
    kw1["pattern"], kw2["pattern"] = p1, p2
    return kw1, kw2


def empirical_kernel_fn(
    apply_fn: ApplyFn,
    *,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian",
    vmap_axes: Any = None,
):
    """``f(x1, x2, get, params)`` returning the empirical NNGP and/or NTK.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``.
        trace_axes: output axes averaged over.
        diagonal_axes: output axes of which only the diagonal is kept.
        implementation: see :func:`empirical_ntk`.
        vmap_axes: see :func:`empirical_ntk`.

    Returns:
        ``f(x1, x2, get, params, kwargs1=None, kwargs2=None, *, pattern=None)``; ``get``
        is ``"nngp"``, ``"ntk"`` or a tuple of both (then a dict ``{"nngp": ...,
        "ntk": ...}``). ``kwargs1``/``kwargs2``: keyword arguments of ``apply_fn`` on
        ``x1``/``x2``; ``pattern=(pattern1, pattern2)`` (``(pattern1, None)`` when ``x2``
        is None) adds ``pattern=pattern1``/``pattern2`` to them, the graphs of a network
        with ``Aggregate`` layers, as ``kernel_fn`` takes them.
    """
    ntk_fn = empirical_ntk_fn(
        apply_fn, trace_axes, diagonal_axes, implementation=implementation, vmap_axes=vmap_axes
    )

    def f(x1, x2, get, params, kwargs1=None, kwargs2=None, *, pattern=None):
        names = (get,) if isinstance(get, str) else tuple(get)
        if pattern is not None:
            kwargs1, kwargs2 = with_pattern(pattern, kwargs1, kwargs2, x2)
        out = {}
        for n in names:
            if n == "nngp":
                out[n] = empirical_nngp(
                    apply_fn,
                    params,
                    x1,
                    x2,
                    trace_axes=trace_axes,
                    diagonal_axes=diagonal_axes,
                    kwargs1=kwargs1,
                    kwargs2=kwargs2,
                )
            elif n == "ntk":
                out[n] = ntk_fn(x1, x2, params, kwargs1, kwargs2)
            else:
                raise ValueError(f"empirical kernel: get must name 'nngp' or 'ntk', got {n!r}")
        return out[names[0]] if isinstance(get, str) else out

    return f
