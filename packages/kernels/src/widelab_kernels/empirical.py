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
) -> jax.Array:
    """Empirical NNGP ``f(x1) . f(x2) / |traced|`` of one network draw.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs`` with a leading batch axis.
        params: the parameters.
        x1: first inputs.
        x2: second inputs (``None``: ``x1``).
        trace_axes: output axes averaged over (default the channel axis).
        diagonal_axes: output axes of which only the diagonal is kept (e.g. ``(0,)``).

    Returns:
        Array with one axis per diagonal axis and two per other non-traced axis
        (``(n1, n2)`` for ``(n, k)`` outputs and the defaults).
    """
    f1 = apply_fn(params, x1)
    f2 = f1 if x2 is None else apply_fn(params, x2)
    _check_diagonal(f1.shape, f2.shape, diagonal_axes)
    a, b, out, trace = _contract_spec(f1.ndim, trace_axes, diagonal_axes)
    return jnp.einsum(f"{a},{b}->{out}", f1, f2) / _trace_size(f1.shape, trace)


def empirical_ntk(
    apply_fn: ApplyFn,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian",
) -> jax.Array:
    """Empirical NTK ``J(x1) J(x2)^T / |traced|`` of one network draw (Jacot et al. 2018, eq. 2).

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``.
        params: the parameters (any pytree).
        x1: first inputs.
        x2: second inputs (``None``: ``x1``).
        trace_axes: output axes averaged over.
        diagonal_axes: output axes of which only the diagonal is kept.
        implementation: ``"jacobian"`` (contract the two Jacobians leaf by leaf) or
            ``"ntvp"`` (columns from NTK-vector products ``J1 (J2^T v)``, no Jacobian
            stored; better when parameters far outnumber outputs).

    Returns:
        The NTK block, shaped as in :func:`empirical_nngp`.

    Raises:
        ValueError: unknown implementation or bad axes.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(8), L.Relu(), L.Dense(1))
        >>> _, p = net.init(jax.random.key(0), (3, 2))
        >>> empirical_ntk(net.apply, p, jnp.ones((3, 2))).shape
        (3, 3)
    """
    f1 = lambda p: apply_fn(p, x1)
    f2 = f1 if x2 is None else (lambda p: apply_fn(p, x2))
    out_shape = jax.eval_shape(f1, params).shape
    if x2 is not None:
        _check_diagonal(out_shape, jax.eval_shape(f2, params).shape, diagonal_axes)
    ndim = len(out_shape)
    a, b, out, trace = _contract_spec(ndim, trace_axes, diagonal_axes)
    if implementation == "jacobian":
        j1 = jax.jacrev(f1)(params)
        j2 = j1 if x2 is None else jax.jacrev(f2)(params)
        total = None
        for l1, l2 in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)):
            p_ndim = l1.ndim - ndim
            pl = string.ascii_letters[-p_ndim:] if p_ndim else ""
            term = jnp.einsum(f"{a}{pl},{b}{pl}->{out}", l1, l2)
            total = term if total is None else total + term
        if total is None:
            raise ValueError("empirical_ntk: the network has no parameters")
        return total / _trace_size(out_shape, trace)
    if implementation == "ntvp":
        full = _ntk_full_ntvp(f1, f2, params)  # (*out1, *out2)
        s1, s2 = a, b
        return jnp.einsum(f"{s1}{s2}->{out}", full) / _trace_size(out_shape, trace)
    raise ValueError(
        f"empirical_ntk: implementation must be 'jacobian' or 'ntvp', got {implementation!r}"
    )


def _ntk_full_ntvp(f1, f2, params):
    out2, vjp2 = jax.vjp(f2, params)
    eye = jnp.eye(out2.size, dtype=out2.dtype)

    def column(ct):
        (tangent,) = vjp2(jnp.reshape(ct, out2.shape))
        return jax.jvp(f1, (params,), (tangent,))[1]

    cols = jax.lax.map(column, eye)  # (size2, *out1)
    cols = jnp.reshape(cols, (*out2.shape, *cols.shape[1:]))
    n2 = out2.ndim
    return jnp.moveaxis(cols, tuple(range(n2)), tuple(range(cols.ndim - n2, cols.ndim)))


def ntk_vector_product(
    apply_fn: ApplyFn, params: Any, x1: jax.Array, x2: jax.Array, v: jax.Array
) -> jax.Array:
    """``Theta(x1, x2) v = J(x1) (J(x2)^T v)`` without forming the NTK or a Jacobian.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``.
        params: the parameters.
        x1: inputs of the result.
        x2: inputs ``v`` lives on.
        v: cotangent with the shape of ``apply_fn(params, x2)``.

    Returns:
        Array shaped like ``apply_fn(params, x1)`` (untraced: all output axes kept).
    """
    _, vjp2 = jax.vjp(lambda p: apply_fn(p, x2), params)
    (tangent,) = vjp2(v)
    return jax.jvp(lambda p: apply_fn(p, x1), (params,), (tangent,))[1]


def empirical_ntk_fn(
    apply_fn: ApplyFn,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian",
) -> Callable[..., jax.Array]:
    """Neural Tangents' calling form ``ntk_fn(x1, x2, params)`` of :func:`empirical_ntk`.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``.
        trace_axes: output axes averaged over.
        diagonal_axes: output axes of which only the diagonal is kept.
        implementation: ``"jacobian"`` or ``"ntvp"`` (see :func:`empirical_ntk`).

    Returns:
        ``ntk_fn(x1, x2, params)`` (``x2=None``: ``x1``), jittable.

    Raises:
        ValueError: unknown implementation (here, not at the first call).
    """
    if implementation not in ("jacobian", "ntvp"):
        raise ValueError(
            f"empirical_ntk_fn: implementation must be 'jacobian' or 'ntvp', got {implementation!r}"
        )

    def ntk_fn(x1, x2, params):
        return empirical_ntk(
            apply_fn,
            params,
            x1,
            x2,
            trace_axes=trace_axes,
            diagonal_axes=diagonal_axes,
            implementation=implementation,
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


def empirical_kernel_fn(
    apply_fn: ApplyFn,
    *,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian",
):
    """``f(x1, x2, get, params)`` returning the empirical NNGP and/or NTK.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``.
        trace_axes: output axes averaged over.
        diagonal_axes: output axes of which only the diagonal is kept.
        implementation: see :func:`empirical_ntk`.

    Returns:
        ``f(x1, x2, get, params)``; ``get`` is ``"nngp"``, ``"ntk"`` or a tuple of both
        (then a dict ``{"nngp": ..., "ntk": ...}``).
    """

    def f(x1, x2, get, params):
        names = (get,) if isinstance(get, str) else tuple(get)
        out = {}
        for n in names:
            if n == "nngp":
                out[n] = empirical_nngp(
                    apply_fn, params, x1, x2, trace_axes=trace_axes, diagonal_axes=diagonal_axes
                )
            elif n == "ntk":
                out[n] = empirical_ntk(
                    apply_fn,
                    params,
                    x1,
                    x2,
                    trace_axes=trace_axes,
                    diagonal_axes=diagonal_axes,
                    implementation=implementation,
                )
            else:
                raise ValueError(f"empirical kernel: get must name 'nngp' or 'ntk', got {n!r}")
        return out[names[0]] if isinstance(get, str) else out

    return f
