"""The ``Kernel`` pytree: NNGP and NTK of a network on a pair of input batches.

Layouts (``n1``/``n2`` batch sizes, ``S = (s_1, ..., s_d)`` spatial sizes):

* ``diagonal_spatial=True`` (pool-free networks): only same-position covariances are
  kept. ``nngp``/``ntk`` have shape ``(n1, n2, *S)``, ``cov1`` ``(n1, *S)``.
* ``diagonal_spatial=False`` (pooling, attention): all position pairs.
  ``nngp``/``ntk`` have shape ``(n1, n2, *S, *S)`` (positions of ``x1`` first),
  ``cov1`` ``(n1, *S, *S)``.

``cov1``/``cov2`` hold each example's covariance with itself (batch diagonal);
``cov2`` is ``None`` when ``x2`` is ``x1``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Kernel:
    """Infinite-width kernels of one network layer's output (a JAX pytree).

    Attributes:
        nngp: NNGP covariance ``E[f(x1) f(x2)]`` per output channel.
        ntk: neural tangent kernel, or ``None`` when not requested.
        cov1: ``E[f(x1) f(x1)]`` for each example of ``x1`` (batch diagonal).
        cov2: the same for ``x2``; ``None`` when ``x2`` is ``x1``.
        mask1: padding mask of ``x1`` positions ``(n1, *S)`` (``True`` = padding) or None.
        mask2: the same for ``x2`` (None when ``x2`` is ``x1`` or no masking).
        shape1: finite-width shape ``(n1, *S, channels)`` the layer would produce on ``x1``.
        shape2: the same for ``x2``.
        diagonal_spatial: layout flag (see module docstring).
        diagonal_batch: always ``True`` here: ``cov1`` is per example.
        is_gaussian: the layer's output is a Gaussian process (needed by nonlinearities).
        is_input: the kernel is the raw input covariance (no layer applied yet).
        x1_is_x2: ``x2`` was ``None`` (so ``nngp`` is square with ``cov1`` on its diagonal).
    """

    nngp: Array
    ntk: Array | None
    cov1: Array
    cov2: Array | None
    mask1: Array | None = None
    mask2: Array | None = None
    shape1: tuple[int, ...] = ()
    shape2: tuple[int, ...] = ()
    diagonal_spatial: bool = True
    diagonal_batch: bool = True
    is_gaussian: bool = False
    is_input: bool = False
    x1_is_x2: bool = False

    def replace(self, **changes: Any) -> Kernel:
        """Return a copy with ``changes`` applied (the dataclass is frozen)."""
        return dataclasses.replace(self, **changes)

    # Bookkeeping -----------------------------------------------------
    @property
    def spatial1(self) -> tuple[int, ...]:
        """Spatial sizes of ``x1`` (empty for ``(batch, channels)`` data)."""
        return tuple(self.shape1[1:-1])

    @property
    def spatial2(self) -> tuple[int, ...]:
        """Spatial sizes of ``x2``."""
        return tuple(self.shape2[1:-1])

    @property
    def n_spatial(self) -> int:
        """Number of spatial axes."""
        return len(self.shape1) - 2

    @property
    def channels(self) -> int:
        """Finite channel count the layer would have (used by standard parameterization)."""
        return int(self.shape1[-1])

    def var1(self) -> Array:
        """Per-position variances of ``x1``: shape ``(n1, *S)``."""
        return _diag_positions(self.cov1, self.spatial1, self.diagonal_spatial)

    def var2(self) -> Array:
        """Per-position variances of ``x2`` (``x1``'s when ``x2`` is ``x1``)."""
        if self.cov2 is None:
            return self.var1()
        return _diag_positions(self.cov2, self.spatial2, self.diagonal_spatial)


def _diag_positions(cov: Array, spatial: tuple[int, ...], diagonal_spatial: bool) -> Array:
    if diagonal_spatial or not spatial:
        return cov
    n = cov.shape[0]
    p = math.prod(spatial)
    flat = jnp.reshape(cov, (n, p, p))
    return jnp.reshape(jnp.diagonal(flat, axis1=1, axis2=2), (n, *spatial))


def pair_broadcast(v1: Array, v2: Array, k: Kernel) -> tuple[Array, Array]:
    """Per-position quantities ``(n1, *S)``, ``(n2, *S)`` made broadcastable against
    ``k.nngp``: ``(n1, 1, *S)`` for the diagonal layout, ``(n1, 1, *S, 1, ..)`` and
    ``(1, n2, 1, .., *S)`` for the full layout."""
    d = k.n_spatial
    if k.diagonal_spatial or d == 0:
        return v1[:, None], v2[None]
    ones = (1,) * d
    v1 = jnp.reshape(v1, (v1.shape[0], 1, *v1.shape[1:], *ones))
    v2 = jnp.reshape(v2, (1, v2.shape[0], *ones, *v2.shape[1:]))
    return v1, v2


def self_broadcast(v: Array, k: Kernel) -> tuple[Array, Array]:
    """Per-position ``(n, *S)`` made broadcastable against a batch-diagonal covariance."""
    d = k.n_spatial
    if k.diagonal_spatial or d == 0:
        return v, v
    ones = (1,) * d
    return (
        jnp.reshape(v, (v.shape[0], *v.shape[1:], *ones)),
        jnp.reshape(v, (v.shape[0], *ones, *v.shape[1:])),
    )


def pair_variances(k: Kernel) -> tuple[Array, Array]:
    """Variances broadcastable against ``k.nngp`` (see :func:`pair_broadcast`)."""
    return pair_broadcast(k.var1(), k.var2(), k)


def _flatten(k: Kernel):
    children = (k.nngp, k.ntk, k.cov1, k.cov2, k.mask1, k.mask2)
    aux = (
        k.shape1,
        k.shape2,
        k.diagonal_spatial,
        k.diagonal_batch,
        k.is_gaussian,
        k.is_input,
        k.x1_is_x2,
    )
    return children, aux


def _unflatten(aux, children):
    nngp, ntk, cov1, cov2, mask1, mask2 = children
    shape1, shape2, ds, db, ig, ii, same = aux
    return Kernel(nngp, ntk, cov1, cov2, mask1, mask2, shape1, shape2, ds, db, ig, ii, same)


jax.tree_util.register_pytree_node(Kernel, _flatten, _unflatten)
