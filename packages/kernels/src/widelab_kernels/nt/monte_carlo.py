"""Neural Tangents' ``monte_carlo_kernel_fn`` over :mod:`widelab_kernels.monte_carlo`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax.numpy as jnp

from .. import monte_carlo as _mc
from ..analytic import _result_type
from ._layer import StaxLayer
from .batching import batch
from .empirical import NtkImplementation, implementation_name, split_kwargs


def _axes(a) -> tuple[int, ...]:
    return (a,) if isinstance(a, int) else tuple(a)


def monte_carlo_kernel_fn(
    init_fn: Callable,
    apply_fn: Callable,
    key,
    n_samples: int | Iterable[int],
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = NtkImplementation.JACOBIAN_CONTRACTION,
) -> Callable:
    """NT's ``monte_carlo_kernel_fn``: empirical kernels averaged over ``n_samples``
    random initialisations (a consistent estimator of the infinite-width kernels,
    Novak et al. 2020, Sec. 3).

    Args:
        init_fn: ``init_fn(key, input_shape) -> (output_shape, params)``.
        apply_fn: ``apply_fn(params, x)``. When both come from one ``nt.stax`` layer
            the layer itself is sampled (so ``Dropout`` draws its own masks).
        key: a ``jax.random`` key.
        n_samples: a count, or an iterable of counts: then ``kernel_fn`` returns a
            generator of estimates from the first ``n`` draws for each ``n`` in
            increasing order (the draws are made once, for the largest ``n``).
        batch_size: tile edge (see :func:`widelab_kernels.nt.batch`); ``0``: none.
        device_count: see :func:`widelab_kernels.nt.batch`.
        store_on_device: see :func:`widelab_kernels.nt.batch`.
        trace_axes: output axes averaged over.
        diagonal_axes: output axes of which only the diagonal is kept.
        vmap_axes: only ``None`` is supported for Monte Carlo estimates.
        implementation: an :class:`NtkImplementation`.

    Returns:
        ``kernel_fn(x1, x2=None, get=None, **apply_fn_kwargs)``: an array for ``get`` a
        string, a named tuple for a tuple or ``None`` (``("nngp", "ntk")``); a generator
        of those for an iterable ``n_samples``. ``apply_fn_kwargs`` go to ``apply_fn``
        as in NT: a pair ``(a, b)`` gives ``a`` on ``x1`` and ``b`` on ``x2`` (e.g.
        ``pattern=(pattern1, pattern2)`` for graph networks), anything else goes to both.

    Raises:
        ValueError: a count below 1.
    """
    if vmap_axes is not None:
        raise NotImplementedError("monte_carlo_kernel_fn: vmap_axes must be None")
    owner = getattr(init_fn, "__self__", None)
    net = owner if isinstance(owner, StaxLayer) and apply_fn == owner.apply_fn else None
    if net is None:
        net = (init_fn, apply_fn)
    progressive = not isinstance(n_samples, int)
    counts = sorted({int(n) for n in n_samples}) if progressive else [int(n_samples)]
    if not counts or counts[0] < 1:
        raise ValueError(f"monte_carlo_kernel_fn: n_samples must be >= 1, got {n_samples!r}")
    inner = _mc.monte_carlo_kernel_fn(
        net,
        key,
        counts[-1],
        trace_axes=_axes(trace_axes),
        diagonal_axes=_axes(diagonal_axes),
        implementation=implementation_name(implementation),
        return_samples=progressive,
    )

    def names_of(get):
        names = ("nngp", "ntk") if get is None else ((get,) if isinstance(get, str) else tuple(get))
        if not names or any(n not in ("nngp", "ntk") for n in names):
            raise ValueError(f"kernel_fn: get must be 'nngp', 'ntk' or a tuple, got {get!r}")
        return names

    def shape(get, values: dict):
        if isinstance(get, str):
            return values[get]
        names = names_of(get)
        return _result_type(names)(*(values[n] for n in names))

    def estimate(x1, x2=None, get=None, **apply_fn_kwargs):
        names = names_of(get)
        if "rng" in apply_fn_kwargs:
            raise TypeError("kernel_fn: rng is drawn for every sample; do not pass one")
        kw1, kw2 = split_kwargs(apply_fn_kwargs, x2)
        if x2 is None:
            kw2 = kw1
        out = inner(x1, x2, get=names, kwargs1=kw1, kwargs2=kw2)
        if not progressive:
            return shape(get, out)
        return {n: out[f"{n}_samples"] for n in names}

    if progressive and batch_size:
        raise NotImplementedError(
            "monte_carlo_kernel_fn: an iterable n_samples cannot be combined with batch_size"
        )
    run = batch(estimate, batch_size, device_count, store_on_device)

    def kernel_fn(x1, x2=None, get=None, **apply_fn_kwargs):
        if not progressive:
            fn = run if batch_size else estimate
            return fn(x1, x2, get, **apply_fn_kwargs)
        return _generator(estimate(x1, x2, get, **apply_fn_kwargs), counts, get, shape)

    return kernel_fn


def _generator(samples: dict, counts, get, shape):
    for n in counts:
        yield shape(get, {k: jnp.mean(v[:n], axis=0) for k, v in samples.items()})


__all__ = ["monte_carlo_kernel_fn"]
