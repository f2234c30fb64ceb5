"""Neural Tangents' empirical-kernel names and calling forms over
:mod:`widelab_kernels.empirical`.

Translations only: NT's :class:`NtkImplementation` values to widelab's implementation
names, NT's ``**apply_fn_kwargs`` (split between ``x1`` and ``x2``: a pair ``(a, b)``
gives ``a`` to ``x1`` and ``b`` to ``x2``, an ``rng`` key is used as is for ``x1`` and
folded with 1 for ``x2``) and NT's return forms.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

import jax

from .. import empirical as _emp
from ..analytic import _result_type


class NtkImplementation(enum.IntEnum):
    """How the empirical NTK is computed (Novak et al. 2022, Sec. 3); NT's values."""

    AUTO = 0
    JACOBIAN_CONTRACTION = 1
    NTK_VECTOR_PRODUCTS = 2
    STRUCTURED_DERIVATIVES = 3


_NAMES = {
    NtkImplementation.AUTO: "auto",
    NtkImplementation.JACOBIAN_CONTRACTION: "jacobian",
    NtkImplementation.NTK_VECTOR_PRODUCTS: "ntvp",
    NtkImplementation.STRUCTURED_DERIVATIVES: "structured",
}


def implementation_name(implementation: Any) -> str:
    """widelab's name for an :class:`NtkImplementation` (or its int value).

    Raises:
        ValueError: not one of NT's four values.
    """
    try:
        return _NAMES[NtkImplementation(int(implementation))]
    except (ValueError, TypeError):
        raise ValueError(
            f"implementation must be an NtkImplementation (0-3), got {implementation!r}"
        ) from None


def _axes(a) -> tuple[int, ...]:
    return (a,) if isinstance(a, int) else tuple(a)


def split_kwargs(kwargs: dict, x2) -> tuple[dict, dict]:
    """NT's split of ``apply_fn`` keywords between ``x1`` and ``x2``."""
    kw1, kw2 = {}, {}
    for k, v in kwargs.items():
        if k == "rng" and v is not None and x2 is not None:
            kw1[k], kw2[k] = v, jax.random.fold_in(v, 1)
        elif isinstance(v, tuple) and len(v) == 2:
            kw1[k], kw2[k] = v
        else:
            kw1[k] = kw2[k] = v
    return kw1, kw2


def empirical_ntk_fn(
    f: Callable,
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = NtkImplementation.JACOBIAN_CONTRACTION,
) -> Callable:
    """NT's ``empirical_ntk_fn``: ``ntk_fn(x1, x2, params, **apply_fn_kwargs)``.

    See :func:`widelab_kernels.empirical.empirical_ntk` for the three implementations
    and ``vmap_axes``.
    """
    inner = _emp.empirical_ntk_fn(
        f,
        _axes(trace_axes),
        _axes(diagonal_axes),
        implementation=implementation_name(implementation),
        vmap_axes=vmap_axes,
    )

    def ntk_fn(x1, x2, params, **apply_fn_kwargs):
        kw1, kw2 = split_kwargs(apply_fn_kwargs, x2)
        return inner(x1, x2, params, kw1, kw2)

    return ntk_fn


def empirical_nngp_fn(
    f: Callable, trace_axes: int | Sequence[int] = (-1,), diagonal_axes: int | Sequence[int] = ()
) -> Callable:
    """NT's ``empirical_nngp_fn``: ``nngp_fn(x1, x2, params, **apply_fn_kwargs)``."""
    fn = f

    def nngp_fn(x1, x2, params, **apply_fn_kwargs):
        kw1, kw2 = split_kwargs(apply_fn_kwargs, x2)
        return _emp.empirical_nngp(
            fn,
            params,
            x1,
            x2,
            trace_axes=_axes(trace_axes),
            diagonal_axes=_axes(diagonal_axes),
            kwargs1=kw1,
            kwargs2=kw2,
        )

    return nngp_fn


def empirical_kernel_fn(
    f: Callable,
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = NtkImplementation.JACOBIAN_CONTRACTION,
) -> Callable:
    """NT's ``empirical_kernel_fn``: ``kernel_fn(x1, x2, get, params, **apply_fn_kwargs)``.

    ``get`` a string gives that array; a tuple (or ``None``, meaning
    ``("nngp", "ntk")``) a named tuple.
    """
    ntk = empirical_ntk_fn(f, trace_axes, diagonal_axes, vmap_axes, implementation)
    nngp = empirical_nngp_fn(f, trace_axes, diagonal_axes)

    def kernel_fn(x1, x2, get, params, **apply_fn_kwargs):
        names = ("nngp", "ntk") if get is None else ((get,) if isinstance(get, str) else tuple(get))
        fns = {"nngp": nngp, "ntk": ntk}
        bad = [n for n in names if n not in fns]
        if bad or not names:
            raise ValueError(
                f"kernel_fn: get must be 'nngp', 'ntk' or a tuple of them, got {get!r}"
            )
        out = {n: fns[n](x1, x2, params, **apply_fn_kwargs) for n in names}
        if isinstance(get, str):
            return out[get]
        return _result_type(names)(*(out[n] for n in names))

    return kernel_fn


def empirical_ntk_vp_fn(f: Callable, x1, x2, params, **apply_fn_kwargs) -> Callable:
    """NT's ``empirical_ntk_vp_fn``: ``ntk_vp(cotangents) = J(x1) J(x2)^T cotangents``
    without forming the NTK (Novak et al. 2022, Sec. 3.2)."""
    kw1, kw2 = split_kwargs(apply_fn_kwargs, x2)
    fn = f
    xb = x1 if x2 is None else x2
    f1 = lambda p, x: fn(p, x, **kw1)
    f2 = lambda p, x: fn(p, x, **kw2)

    def ntk_vp(cotangents):
        return _emp.ntk_vector_product(f1, params, x1, xb, cotangents, apply_fn2=f2)

    return ntk_vp


__all__ = [
    "NtkImplementation",
    "empirical_kernel_fn",
    "empirical_nngp_fn",
    "empirical_ntk_fn",
    "empirical_ntk_vp_fn",
]
