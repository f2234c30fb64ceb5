"""Sliced and projected Wasserstein distances with i.i.d. or orthogonal directions.

Rowland, Hron, Tang, Choromanski, Sarlos, Weller (2019), "Orthogonal estimators for
machine learning and statistics: sliced Wasserstein distance, projected Wasserstein
distance", AISTATS.

For measures ``mu, nu`` on ``R^d`` the sliced ``p``-Wasserstein distance is (their eq. 2)

    SW_p^p(mu, nu) = E_{theta ~ Unif(S^{d-1})} W_p^p(theta # mu, theta # nu),

where ``theta # mu`` is the law of ``<theta, X>``. One-dimensional ``W_p`` between
empirical measures is the ``L^p`` distance of their quantile functions, so each slice
costs a sort. The Monte Carlo estimator ``(1/L) sum_l W_p^p(theta_l # mu, theta_l # nu)``
is unbiased for ``SW_p^p`` whenever each ``theta_l`` is marginally uniform on the sphere;
drawing the directions in blocks of ``d`` mutually orthogonal rows of a Haar-random
orthogonal matrix keeps this and lowers the variance (their Section 3).

The projected Wasserstein distance (their Section 4) uses the coupling found by sorting
each 1-D projection, but pays the cost in the original space:

    PW_p^p(mu, nu) = E_theta (1/n) sum_i || x_{sigma_theta(i)} - y_{tau_theta(i)} ||^p,

so that, for equal-size empirical measures, ``SW_p <= W_p <= PW_p``.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp

Directions = Literal["iid", "orthogonal"]


def _check_samples(x, y, name_x="x", name_y="y"):
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    for name, a in ((name_x, x), (name_y, y)):
        if a.ndim != 2:
            raise ValueError(f"{name} must be a (n_samples, dim) array, got shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"{name} is an empty measure (0 samples, shape {a.shape})")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y live in different dimensions: x has shape {x.shape}, y has shape {y.shape}"
        )
    return x, y


def _check_p(p):
    if not (isinstance(p, int | float) and p >= 1):
        raise ValueError(f"p must be a number >= 1, got {p!r}")


def random_directions(
    key: jax.Array, n_projections: int, dim: int, kind: Directions = "iid", dtype=None
) -> jax.Array:
    """Unit directions on the sphere ``S^{dim-1}``, i.i.d. or in orthogonal blocks.

    Rowland et al. (2019), Section 3: with ``kind="orthogonal"`` the directions come in
    blocks of ``dim`` rows of independent Haar-random orthogonal matrices (QR of a
    Gaussian matrix with the sign of ``R``'s diagonal folded into ``Q``); the last block
    is truncated. Each row is marginally uniform on the sphere.

    Args:
        key: a ``jax.random`` key.
        n_projections: number of directions ``L >= 1``.
        dim: the ambient dimension ``d >= 1``.
        kind: ``"iid"`` or ``"orthogonal"``.
        dtype: floating dtype (default: jax's default float).

    Returns:
        ``(n_projections, dim)`` array of unit rows.

    Raises:
        ValueError: non-positive sizes or an unknown ``kind``.
    """
    if int(n_projections) < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    dtype = dtype or jnp.zeros(()).dtype
    if kind == "iid":
        g = jax.random.normal(key, (n_projections, dim), dtype)
        return g / jnp.linalg.norm(g, axis=1, keepdims=True)
    if kind == "orthogonal":
        n_blocks = math.ceil(n_projections / dim)
        g = jax.random.normal(key, (n_blocks, dim, dim), dtype)
        q, r = jnp.linalg.qr(g)
        signs = jnp.sign(jnp.diagonal(r, axis1=1, axis2=2))
        signs = jnp.where(signs == 0, jnp.ones((), dtype), signs)
        q = q * signs[:, None, :]  # Haar: columns of Q times sign(diag R)
        rows = jnp.swapaxes(q, 1, 2).reshape(n_blocks * dim, dim)
        return rows[:n_projections]
    raise ValueError(f"kind must be 'iid' or 'orthogonal', got {kind!r}")


def wasserstein_1d(u: jax.Array, v: jax.Array, p: float = 2.0) -> jax.Array:
    """``W_p^p`` between 1-D empirical measures with uniform weights, batched.

    ``W_p^p = int_0^1 |F^{-1}(t) - G^{-1}(t)|^p dt``; the quantile functions are step
    functions with jumps at ``i/n`` and ``j/m``, so the integral is a finite sum over the
    merged jump points. For ``n == m`` it is ``mean_i |u_(i) - v_(i)|^p``.

    Args:
        u: ``(..., n)`` samples of the first measure (last axis).
        v: ``(..., m)`` samples of the second measure; leading axes must match ``u``'s.
        p: the order ``p >= 1``.

    Returns:
        ``(...)`` array of ``W_p^p``.

    Raises:
        ValueError: empty inputs, mismatched leading axes or ``p < 1``.
    """
    _check_p(p)
    u = jnp.asarray(u)
    v = jnp.asarray(v)
    if u.shape[-1] == 0 or v.shape[-1] == 0:
        raise ValueError(f"empty measure: shapes {u.shape} and {v.shape}")
    if u.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"leading axes differ: u {u.shape} vs v {v.shape}")
    n, m = u.shape[-1], v.shape[-1]
    us = jnp.sort(u, axis=-1)
    vs = jnp.sort(v, axis=-1)
    if n == m:
        return jnp.mean(jnp.abs(us - vs) ** p, axis=-1)
    dtype = us.dtype
    t = jnp.sort(
        jnp.concatenate(
            [jnp.arange(1, n + 1, dtype=dtype) / n, jnp.arange(1, m + 1, dtype=dtype) / m]
        )
    )
    dt = jnp.diff(t, prepend=jnp.zeros((1,), dtype))
    mid = t - dt / 2
    iu = jnp.clip(jnp.floor(mid * n).astype(jnp.int32), 0, n - 1)
    iv = jnp.clip(jnp.floor(mid * m).astype(jnp.int32), 0, m - 1)
    diff = jnp.take(us, iu, axis=-1) - jnp.take(vs, iv, axis=-1)
    return jnp.sum(jnp.abs(diff) ** p * dt, axis=-1)


def sliced_wasserstein(
    x: jax.Array,
    y: jax.Array,
    *,
    key: jax.Array,
    n_projections: int = 50,
    p: float = 2.0,
    directions: Directions = "iid",
    root: bool = True,
) -> jax.Array:
    """Monte Carlo sliced ``p``-Wasserstein distance between two empirical measures.

    Rowland et al. (2019), eq. 2 and Section 3:
    ``SW_p^p ~= (1/L) sum_l W_p^p(theta_l # mu_x, theta_l # mu_y)``, unbiased for
    ``SW_p^p`` with i.i.d. or orthogonal-block directions. Jit-able (``n_projections``,
    ``p``, ``directions`` static) and differentiable in ``x`` and ``y`` almost everywhere.

    Args:
        x: ``(n, d)`` samples of the first measure.
        y: ``(m, d)`` samples of the second measure.
        key: a ``jax.random`` key for the directions.
        n_projections: number of directions ``L``.
        p: order ``p >= 1``.
        directions: ``"iid"`` or ``"orthogonal"``.
        root: return ``SW_p`` (as POT does) rather than the unbiased ``SW_p^p``.

    Returns:
        A scalar.

    Raises:
        ValueError: empty measures, mismatched dimensions, bad ``p`` or ``directions``.

    Example:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (64, 3))
        >>> float(sliced_wasserstein(x, x, key=jax.random.key(1)))
        0.0
    """
    x, y = _check_samples(x, y)
    _check_p(p)
    theta = random_directions(key, n_projections, x.shape[1], directions, x.dtype)
    sw_pp = jnp.mean(wasserstein_1d(theta @ x.T, theta @ y.T, p))
    return sw_pp ** (1.0 / p) if root else sw_pp


def projected_wasserstein(
    x: jax.Array,
    y: jax.Array,
    *,
    key: jax.Array,
    n_projections: int = 50,
    p: float = 2.0,
    directions: Directions = "iid",
    root: bool = True,
) -> jax.Array:
    """Projected ``p``-Wasserstein distance between equal-size empirical measures.

    Rowland et al. (2019), Section 4: each direction's sorting defines a coupling
    ``x_(i) <-> y_(i)`` of the projected samples, whose cost is then paid in ``R^d``:
    ``PW_p^p ~= (1/L) sum_l (1/n) sum_i ||x_{sigma_l(i)} - y_{tau_l(i)}||^p``. Every term
    is the cost of a coupling, so ``PW_p >= W_p``.

    Args:
        x: ``(n, d)`` samples.
        y: ``(n, d)`` samples (same ``n``).
        key: a ``jax.random`` key for the directions.
        n_projections: number of directions.
        p: order ``p >= 1``.
        directions: ``"iid"`` or ``"orthogonal"``.
        root: return ``PW_p`` rather than ``PW_p^p``.

    Returns:
        A scalar.

    Raises:
        ValueError: empty measures, mismatched shapes, bad ``p`` or ``directions``.
    """
    x, y = _check_samples(x, y)
    _check_p(p)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"projected_wasserstein needs equal sample sizes, got {x.shape[0]} and {y.shape[0]}"
        )
    theta = random_directions(key, n_projections, x.shape[1], directions, x.dtype)
    ix = jnp.argsort(theta @ x.T, axis=1)
    iy = jnp.argsort(theta @ y.T, axis=1)
    diff = x[ix] - y[iy]  # (L, n, d)
    cost = jnp.sum(diff**2, axis=-1) ** (p / 2)
    pw_pp = jnp.mean(cost)
    return pw_pp ** (1.0 / p) if root else pw_pp


def sliced_wasserstein_gaussian(
    mean_x: jax.Array, std_x: float, mean_y: jax.Array, std_y: float
) -> jax.Array:
    """Exact ``SW_2`` between isotropic Gaussians ``N(m_x, s_x^2 I)`` and ``N(m_y, s_y^2 I)``.

    Each projection is ``N(<theta, m>, s^2)`` and ``W_2^2`` between 1-D Gaussians is
    ``(m_1 - m_2)^2 + (s_1 - s_2)^2``; averaging ``<theta, m_x - m_y>^2`` over the sphere
    gives ``SW_2^2 = ||m_x - m_y||^2 / d + (s_x - s_y)^2``.

    Args:
        mean_x: ``(d,)`` mean of the first Gaussian.
        std_x: its standard deviation (>= 0).
        mean_y: ``(d,)`` mean of the second Gaussian.
        std_y: its standard deviation (>= 0).

    Returns:
        ``SW_2`` (a scalar).

    Raises:
        ValueError: negative standard deviations or mismatched means.
    """
    mean_x = jnp.atleast_1d(jnp.asarray(mean_x))
    mean_y = jnp.atleast_1d(jnp.asarray(mean_y))
    if mean_x.shape != mean_y.shape or mean_x.ndim != 1:
        raise ValueError(
            f"means must be (d,) vectors of equal size: {mean_x.shape}, {mean_y.shape}"
        )
    if std_x < 0 or std_y < 0:
        raise ValueError(f"standard deviations must be >= 0, got {std_x} and {std_y}")
    d = mean_x.shape[0]
    return jnp.sqrt(jnp.sum((mean_x - mean_y) ** 2) / d + (std_x - std_y) ** 2)


def wasserstein_exact(x, y, p: float = 2.0) -> float:
    """Exact ``W_p`` between equal-size empirical measures (assignment problem, scipy).

    Args:
        x: ``(n, d)`` samples.
        y: ``(n, d)`` samples.
        p: order ``p >= 1``.

    Returns:
        ``W_p`` as a float (costs ``O(n^3)``: for small samples and tests).

    Raises:
        ValueError: empty or mismatched inputs.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    x, y = _check_samples(x, y)
    _check_p(p)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"wasserstein_exact needs equal sizes, got {x.shape[0]} and {y.shape[0]}")
    xn = np.asarray(x, np.float64)
    yn = np.asarray(y, np.float64)
    cost = np.sum((xn[:, None, :] - yn[None, :, :]) ** 2, axis=-1) ** (p / 2)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean() ** (1.0 / p))
