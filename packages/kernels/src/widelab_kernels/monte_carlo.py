"""Monte Carlo estimates of the NNGP and NTK from finite networks' ``init``/``apply``.

The average of empirical kernels over ``n_samples`` independent initialisations
converges to the analytic kernel as the widths grow (Novak et al. 2020, Neural
Tangents, Sec. 3 "monte_carlo_kernel_fn").
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from widelab_core.layers import Layer

from .empirical import empirical_nngp, empirical_ntk, with_pattern


def _stochastic_apply(net: Layer, key, x1, x2):
    """``apply`` with a random key per input batch (for Dropout): the same key for
    every call on ``x1`` and an independent one for ``x2``, so that one example sees
    one dropout mask, and different examples independent ones. Keyword arguments
    (e.g. ``pattern``) are passed on."""
    k1, k2 = jax.random.split(key)

    def apply(params, x, **kwargs):
        k = k1 if x is x1 else k2
        return net.apply(params, x, key=k, **kwargs)

    return apply


class _Pair:
    """``(init_fn, apply_fn)`` seen as a deterministic layer."""

    def __init__(self, init_fn, apply_fn):
        self.init, self._apply = init_fn, apply_fn

    def apply(self, params, x, *, key=None, **kwargs):
        return self._apply(params, x, **kwargs)


def _per_example(kwargs: dict) -> tuple[dict, dict]:
    """``kwargs`` split into array-valued entries (one row per example, cut into tiles
    with their inputs) and the rest (passed to every tile as they are)."""
    rows, rest = {}, {}
    for k, v in kwargs.items():
        leaves = jax.tree_util.tree_leaves(v)
        if leaves and all(hasattr(a, "shape") and jnp.ndim(a) > 0 for a in leaves):
            rows[k] = v
        else:
            rest[k] = v
    return rows, rest


def monte_carlo_kernel_fn(
    net: Layer | tuple,
    key: jax.Array,
    n_samples: int,
    *,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    batch_size: int | None = None,
    implementation: str = "jacobian",
    return_samples: bool = False,
):
    """``f(x1, x2=None, get=("nngp", "ntk"))``: empirical kernels averaged over draws.

    Args:
        net: a layer value (``init``/``apply``), or a pair ``(init_fn, apply_fn)`` with
            ``init_fn(key, input_shape) -> (output_shape, params)`` and
            ``apply_fn(params, x)`` (Neural Tangents' calling form; no dropout key).
        key: a ``jax.random`` key; draw ``i`` uses ``jax.random.split(key, n_samples)[i]``.
        n_samples: number of independent initialisations.
        trace_axes: output axes averaged over (default channels).
        diagonal_axes: output axes of which only the diagonal is kept.
        batch_size: tile ``x1 x x2`` through ``widelab_core.devices.pairwise_tiled``.
        implementation: ``"jacobian"`` or ``"ntvp"`` (see ``empirical_ntk``).
        return_samples: also return the per-draw kernels (for standard errors).

    Returns:
        ``f(x1, x2=None, get=("nngp", "ntk"), *, pattern=None, kwargs1=None,
        kwargs2=None)`` giving an array for a single name, a dict for a tuple (with
        ``"<name>_samples"`` entries when ``return_samples``). ``kwargs1``/``kwargs2``
        are keyword arguments of ``apply`` on ``x1``/``x2`` (``kwargs2`` defaults to
        ``kwargs1``); ``pattern=(pattern1, pattern2)`` gives graph networks
        (``Aggregate`` layers) the graphs of the two batches, as ``kernel_fn`` takes them
        (``(pattern1, None)`` when ``x2`` is None). With ``batch_size``, array-valued
        keyword arguments are per-example (leading axis ``n1``/``n2``) and are tiled with
        their inputs; ``x1``'s and ``x2``'s must then have the same trailing shapes.

    Raises:
        ValueError: ``n_samples < 1``, ``batch_size < 1``, or ``net`` is neither a layer
            nor an ``(init_fn, apply_fn)`` pair.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(64), L.Relu(), L.Dense(1))
        >>> f = monte_carlo_kernel_fn(net, jax.random.key(0), 4)
        >>> f(jnp.ones((2, 3)), None, get="nngp").shape
        (2, 2)
    """
    if int(n_samples) < 1:
        raise ValueError(f"monte_carlo_kernel_fn: n_samples must be >= 1, got {n_samples}")
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"monte_carlo_kernel_fn: batch_size must be >= 1, got {batch_size}")
    if isinstance(net, tuple):
        if len(net) != 2 or not all(callable(f) for f in net):
            raise ValueError("monte_carlo_kernel_fn: net must be a layer or (init_fn, apply_fn)")
        net = _Pair(*net)
    keys = jax.random.split(key, int(n_samples))
    kw = dict(trace_axes=trace_axes, diagonal_axes=diagonal_axes)

    def samples(x1, x2, names, kw1, kw2):
        def one(k):
            k_init, k_apply = jax.random.split(k)
            _, params = net.init(k_init, x1.shape)
            apply = _stochastic_apply(net, k_apply, x1, x2)
            sides = dict(kwargs1=kw1, kwargs2=kw2)
            out = {}
            if "nngp" in names:
                out["nngp"] = empirical_nngp(apply, params, x1, x2, **kw, **sides)
            if "ntk" in names:
                out["ntk"] = empirical_ntk(
                    apply, params, x1, x2, implementation=implementation, **kw, **sides
                )
            return out

        return jax.lax.map(one, keys)

    def f(x1, x2=None, get=("nngp", "ntk"), *, pattern=None, kwargs1=None, kwargs2=None):
        names = (get,) if isinstance(get, str) else tuple(get)
        for n in names:
            if n not in ("nngp", "ntk"):
                raise ValueError(f"monte_carlo_kernel_fn: get must name nngp/ntk, got {n!r}")
        x1 = jnp.asarray(x1)
        x2 = None if x2 is None else jnp.asarray(x2)
        kw1, kw2 = with_pattern(pattern, kwargs1, kwargs2, x2, "monte_carlo_kernel_fn")
        if batch_size is None:
            s = samples(x1, x2, names, kw1, kw2)
        else:
            from widelab_core.devices import pairwise_tiled

            rows1, rest1 = _per_example(kw1)
            rows2, rest2 = _per_example(kw1 if x2 is None else kw2)

            def tile(a, b):
                (xa, ra), (xb, rb) = a, b
                s = samples(xa, xb, names, {**rest1, **ra}, {**rest2, **rb})
                return jax.tree_util.tree_map(lambda v: jnp.moveaxis(v, 0, 2), s)

            s = pairwise_tiled(
                tile, (x1, rows1), None if x2 is None else (x2, rows2), batch_size=batch_size
            )
            s = jax.tree_util.tree_map(lambda v: jnp.moveaxis(v, 2, 0), s)
        out = {n: jnp.mean(s[n], axis=0) for n in names}
        if return_samples:
            out.update({f"{n}_samples": s[n] for n in names})
        if isinstance(get, str) and not return_samples:
            return out[get]
        return out

    return f
