"""Linearised and Taylor-expanded networks in their parameters.

``linearize(f, params0)`` is the first-order model of Lee et al. 2019 ("Wide Neural
Networks of Any Depth Evolve as Linear Models Under Gradient Descent", eq. 6):
``f_lin(p, x) = f(p0, x) + J(p0, x) (p - p0)``, computed with one Jacobian-vector
product (the Jacobian is never formed). ``taylor_expand`` adds higher orders:
``sum_k (1/k!) d^k/dt^k f(p0 + t (p - p0), x) at t = 0``.

Both return pure functions of ``(params, *args, **kwargs)``, so ``jax.jit``,
``jax.vmap`` and ``jax.grad`` (with respect to ``params`` or the inputs) go through.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def _sub(a, b):
    return jax.tree_util.tree_map(lambda u, v: u - v, a, b)


def linearize(f: Callable, params: Any) -> Callable:
    """The first-order Taylor model of ``f`` in its parameters around ``params``.

    Args:
        f: ``f(params, *args, **kwargs) -> outputs`` (e.g. a layer's ``apply``).
        params: the expansion point ``p0``.

    Returns:
        ``f_lin(p, *args, **kwargs) = f(p0, *args) + J(p0) (p - p0)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> f = lambda p, x: jnp.sin(p * x)
        >>> f_lin = linearize(f, 0.0)
        >>> round(float(f_lin(0.1, 2.0)), 6)  # sin(0) + cos(0) * 2 * 0.1
        0.2
    """

    def f_lin(p, *args, **kwargs):
        dp = _sub(p, params)
        y, dy = jax.jvp(lambda q: f(q, *args, **kwargs), (params,), (dp,))
        return jax.tree_util.tree_map(jnp.add, y, dy)

    return f_lin


def taylor_expand(f: Callable, params: Any, degree: int) -> Callable:
    """The Taylor polynomial of ``f`` in its parameters of order ``degree``.

    Args:
        f: ``f(params, *args, **kwargs) -> outputs``.
        params: the expansion point ``p0``.
        degree: the order (0: ``f(p0)``; 1: :func:`linearize`).

    Returns:
        ``f_tayl(p, *args, **kwargs) = sum_{k <= degree} (1/k!) g^(k)(0)`` with
        ``g(t) = f(p0 + t (p - p0), *args)``; the derivatives come from nested
        forward-mode products (cost grows as ``2^degree``; keep ``degree`` small).

    Raises:
        ValueError: ``degree`` is negative.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: jnp.exp(p * x)
        >>> round(float(taylor_expand(f, 0.0, 2)(1.0, 1.0)), 6)  # 1 + 1 + 1/2
        2.5
    """
    degree = int(degree)
    if degree < 0:
        raise ValueError(f"taylor_expand: degree must be >= 0, got {degree}")

    def f_tayl(p, *args, **kwargs):
        dp = _sub(p, params)
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        if not jnp.issubdtype(dtype, jnp.inexact):
            dtype = jnp.result_type(float)

        def g(t):
            q = jax.tree_util.tree_map(lambda p0, d: p0 + t * d, params, dp)
            return f(q, *args, **kwargs)

        def derivative(fn):
            return lambda t: jax.jvp(fn, (t,), (jnp.ones((), dtype),))[1]

        t0 = jnp.zeros((), dtype)
        total = g(t0)
        fn = g
        for k in range(1, degree + 1):
            fn = derivative(fn)
            c = 1.0 / math.factorial(k)
            total = jax.tree_util.tree_map(lambda a, b, c=c: a + c * b, total, fn(t0))
        return total

    return f_tayl


__all__ = ["linearize", "taylor_expand"]
