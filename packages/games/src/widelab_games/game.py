"""Exposure games: demand, exposure, utilities and their derivatives.

Hron, Krauth, Jordan, Kilbertus & Dean (ICLR 2023), "Modeling Content Creator Incentives
on Algorithm-Curated Platforms", Section 1.1. Producers ``i = 1..n`` choose unit vectors
``s_i`` on the sphere ``S^{d-1}``; a consumer with embedding ``c`` (drawn from the demand
distribution ``P_c``) is shown producer ``i`` with probability

    p_i(c, s) = softmax(<c, s_1> / tau, ..., <c, s_n> / tau)_i            (softmax, tau > 0)

and, at ``tau = 0``, uniformly among the argmax (hardmax). Producer ``i``'s utility is its
expected exposure ``u_i(s) = E_{c ~ P_c}[p_i(c, s)]`` (the paper's Eq. 1).

Everything here is batched over users: the demand is a weighted set of user embeddings
and sums over users are matrix products (optionally accumulated over user blocks).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


def _check_matrix(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, dim); got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has zero columns: shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{name} has a non-finite value {a[r, c]} at row {r}, column {c}")
    return a


def _check_nonzero_rows(a: np.ndarray, name: str) -> None:
    norms = np.linalg.norm(a.astype(np.float64), axis=1)
    zero = np.flatnonzero(norms <= 1e-12)
    if zero.size:
        raise ValueError(
            f"{name} has a zero vector at row {zero[0]} ({zero.size} zero rows in all); "
            "a zero vector has no direction on the sphere"
        )


def check_profile(profile, n_producers: int | None = None, dim: int | None = None) -> jax.Array:
    """Validate a strategy profile and project it onto the sphere.

    Args:
        profile: ``(n, d)`` array of producer vectors (any non-zero length).
        n_producers: expected ``n`` (checked when given).
        dim: expected ``d`` (checked when given).

    Returns:
        The row-normalised profile as a JAX array.

    Raises:
        ValueError: wrong shape, non-finite entries or a zero row.
    """
    a = _check_matrix(profile, "profile")
    if n_producers is not None and a.shape[0] != n_producers:
        raise ValueError(f"profile has {a.shape[0]} rows but the game has {n_producers} producers")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"profile has dimension {a.shape[1]} but the demand has dimension {dim}")
    _check_nonzero_rows(a, "profile")
    a = np.asarray(a, np.float64)
    return jnp.asarray(a / np.linalg.norm(a, axis=1, keepdims=True), jnp.result_type(float))


def normalize(x: jax.Array) -> jax.Array:
    """Project rows of ``x`` onto the unit sphere (``x / ||x||`` along the last axis)."""
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ExposureGame:
    """An exposure game: a weighted demand, ``n`` producers and a temperature.

    Build it with :func:`make_game`, which validates the input. The dataclass is a JAX
    pytree (``users``, ``weights`` and ``tau`` are leaves, ``n_producers`` is static), so a
    game can be passed to jitted functions and ``tau`` changed without recompiling.

    Attributes:
        users: ``(m, d)`` user embeddings (the support of the demand distribution).
        weights: ``(m,)`` probabilities of the users (non-negative, sum to one).
        tau: softmax temperature; 0 means hardmax.
        n_producers: the number of producers ``n``.
    """

    users: jax.Array
    weights: jax.Array
    tau: jax.Array
    n_producers: int = dataclasses.field(metadata=dict(static=True))

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        return self.users.shape[1]

    @property
    def n_users(self) -> int:
        """Number of support points ``m`` of the demand."""
        return self.users.shape[0]

    def with_tau(self, tau: float) -> ExposureGame:
        """The same game at another temperature."""
        _check_tau(tau)
        return dataclasses.replace(self, tau=jnp.asarray(tau, self.users.dtype))


def _check_tau(tau) -> float:
    t = float(tau)
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"tau must be a finite number >= 0 (0 = hardmax); got {tau!r}")
    return t


def make_game(users, n_producers: int, tau: float, weights=None) -> ExposureGame:
    """An exposure game whose demand is the weighted empirical distribution of ``users``.

    Hron et al. (2023), Section 1.1: the demand ``P_c`` is a distribution over consumer
    embeddings; in the audit (Section 3) it is the empirical distribution of the user
    embeddings of a fitted recommender.

    Args:
        users: ``(m, d)`` user embeddings; finite, no zero rows.
        n_producers: number of producers, at least 1.
        tau: temperature ``>= 0``; ``0`` is the hardmax game.
        weights: optional ``(m,)`` non-negative weights (normalised to sum to one);
            uniform when omitted.

    Returns:
        An :class:`ExposureGame`.

    Raises:
        ValueError: empty or non-finite demand, zero user vectors, ``tau < 0``, a bad
            number of producers or bad weights.

    Example:
        >>> import numpy as np
        >>> g = make_game(np.eye(3), n_producers=2, tau=0.1)
        >>> g.n_users, g.dim, g.n_producers
        (3, 3, 2)
    """
    u = _check_matrix(users, "users (demand)")
    _check_nonzero_rows(u, "users (demand)")
    if isinstance(n_producers, bool) or int(n_producers) != n_producers or n_producers < 1:
        raise ValueError(f"n_producers must be a positive integer; got {n_producers!r}")
    t = _check_tau(tau)
    m = u.shape[0]
    if weights is None:
        w = np.full(m, 1.0 / m)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (m,):
            raise ValueError(f"weights must have shape ({m},) to match users; got {w.shape}")
        if not np.all(np.isfinite(w)) or (w < 0).any():
            i = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
            raise ValueError(f"weights must be finite and >= 0; weights[{i}] = {w[i]}")
        if w.sum() <= 0:
            raise ValueError("weights sum to zero: the demand is empty")
        w = w / w.sum()
    dtype = jnp.result_type(float)
    return ExposureGame(
        users=jnp.asarray(u, dtype),
        weights=jnp.asarray(w, dtype),
        tau=jnp.asarray(t, dtype),
        n_producers=int(n_producers),
    )


# ----------------------------------------------------------------------------------------
# Raw-array kernels (jit-friendly; ``s`` is assumed to be on the sphere).


def softmax_exposure(users: jax.Array, s: jax.Array, tau) -> jax.Array:
    """``(m, n)`` softmax exposure probabilities ``p_i(c, s)`` for every user ``c``."""
    return jax.nn.softmax((users @ s.T) / tau, axis=-1)


def hardmax_exposure(users: jax.Array, s: jax.Array, tie_tol: float = 1e-6) -> jax.Array:
    """``(m, n)`` hardmax exposure: uniform over producers within ``tie_tol`` of the best
    score (the ``tau -> 0`` limit of the softmax, ties split evenly)."""
    sc = users @ s.T
    top = sc.max(axis=-1, keepdims=True)
    win = (sc >= top - tie_tol).astype(sc.dtype)
    return win / win.sum(axis=-1, keepdims=True)


def exposure_numpy(users, s, tau: float, tie_tol: float = 1e-9) -> np.ndarray:
    """Float64 NumPy twin of :func:`softmax_exposure` / :func:`hardmax_exposure` (no
    compilation; used by the audit and the finite-game code)."""
    sc = np.asarray(users, np.float64) @ np.asarray(s, np.float64).T
    top = sc.max(axis=-1, keepdims=True)
    if tau == 0:
        p = (sc >= top - tie_tol).astype(np.float64)
    else:
        p = np.exp((sc - top) / tau)
    return p / p.sum(axis=-1, keepdims=True)


def _blocks(users, weights, user_batch, fill=1.0):
    """Pad users (with ``fill``) and weights (with 0) to a multiple of ``user_batch`` and
    reshape into ``(nb, B, d)`` / ``(nb, B)`` blocks; a padded user has weight 0."""
    m, d = users.shape
    nb = -(-m // user_batch)
    pad = nb * user_batch - m
    u = jnp.concatenate([users, jnp.full((pad, d), fill, users.dtype)])
    u = u.reshape(nb, user_batch, d)
    w = jnp.concatenate([weights, jnp.zeros((pad,), weights.dtype)]).reshape(nb, user_batch)
    return u, w


def _accumulate(fn, users, weights, user_batch):
    """Sum ``fn(users_block, weights_block)`` over user blocks (all at once when None)."""
    if user_batch is None or user_batch >= users.shape[0]:
        return fn(users, weights)
    u, w = _blocks(users, weights, user_batch)

    def body(acc, blk):
        out = fn(*blk)
        return jax.tree.map(jnp.add, acc, out), None

    first = fn(u[0], w[0])
    acc, _ = jax.lax.scan(body, first, (u[1:], w[1:]))
    return acc


def utilities_and_gradients(users, weights, s, tau, user_batch=None):
    """Utilities ``u_i`` ``(n,)`` and each producer's Euclidean gradient of its own utility
    with respect to its own strategy ``(n, d)``, at a softmax game (``tau > 0``).

    Derivation: ``d p_i / d s_i = p_i (1 - p_i) c / tau``, so
    ``grad_i = E_c[p_i (1 - p_i) c] / tau`` (Hron et al. 2023, Eq. 1 differentiated).
    """

    def fn(u, w):
        p = softmax_exposure(u, s, tau)
        util = w @ p
        grad = ((w[:, None] * p * (1.0 - p)).T @ u) / tau
        return util, grad

    return _accumulate(fn, users, weights, user_batch)


def own_hessians(users, weights, s, tau, user_batch=None):
    """``(n, d, d)`` Euclidean Hessians of ``u_i`` with respect to ``s_i``:
    ``E_c[p_i (1 - p_i)(1 - 2 p_i) c c^T] / tau^2``."""

    def fn(u, w):
        p = softmax_exposure(u, s, tau)
        coef = w[:, None] * p * (1.0 - p) * (1.0 - 2.0 * p) / tau**2
        return jnp.einsum("mi,md,me->ide", coef, u, u)

    return _accumulate(fn, users, weights, user_batch)


_softmax_jit = jax.jit(softmax_exposure)
_hardmax_jit = jax.jit(hardmax_exposure, static_argnums=(2,))
_weighted = jax.jit(jnp.matmul)


def tangent_project(s: jax.Array, g: jax.Array) -> jax.Array:
    """Project ``g`` (rows) onto the tangent spaces of the sphere at the rows of ``s``."""
    return g - jnp.sum(g * s, axis=-1, keepdims=True) * s


# ----------------------------------------------------------------------------------------
# Public, validated entry points.


def exposure(game: ExposureGame, profile, *, tie_tol: float = 1e-6) -> jax.Array:
    """Per-user exposure probabilities ``p_i(c, s)``.

    Hron et al. (2023), Eq. 1: softmax of ``<c, s_j> / tau`` over producers, or hardmax
    (uniform over the argmax) at ``tau = 0``.

    Args:
        game: the exposure game.
        profile: ``(n, d)`` strategies (normalised onto the sphere here).
        tie_tol: score difference treated as a tie in the hardmax game.

    Returns:
        ``(m, n)`` array; each row sums to one.

    Raises:
        ValueError: a profile of the wrong shape, non-finite or with a zero row.
    """
    s = check_profile(profile, game.n_producers, game.dim).astype(game.users.dtype)
    if float(game.tau) == 0.0:
        return _hardmax_jit(game.users, s, tie_tol)
    return _softmax_jit(game.users, s, game.tau)


def utilities(game: ExposureGame, profile, *, tie_tol: float = 1e-6) -> jax.Array:
    """Expected exposure of every producer, ``u_i(s) = E_c[p_i(c, s)]``.

    Hron et al. (2023), Eq. 1.

    Args:
        game: the exposure game.
        profile: ``(n, d)`` strategies.
        tie_tol: tie tolerance for the hardmax game.

    Returns:
        ``(n,)`` utilities summing to one.

    Raises:
        ValueError: see :func:`exposure`.

    Example:
        >>> import numpy as np
        >>> g = make_game(np.eye(2), n_producers=2, tau=0.0)
        >>> [round(float(v), 3) for v in utilities(g, np.eye(2))]
        [0.5, 0.5]
    """
    return _weighted(game.weights, exposure(game, profile, tie_tol=tie_tol))


def riemannian_gradients(game: ExposureGame, profile, *, user_batch: int | None = None):
    """Each producer's Riemannian gradient of its own utility on the sphere.

    The Euclidean gradient ``E_c[p_i(1 - p_i) c] / tau`` projected onto the tangent
    space at ``s_i`` (Absil, Mahony & Sepulchre 2008, Eq. 3.37). Zero at a critical point.

    Args:
        game: a softmax game (``tau > 0``).
        profile: ``(n, d)`` strategies.
        user_batch: accumulate over blocks of this many users (bounds memory).

    Returns:
        ``(n, d)`` Riemannian gradients.

    Raises:
        ValueError: ``tau == 0`` (hardmax utilities are piecewise constant) or a bad profile.
    """
    _require_softmax(game)
    s = check_profile(profile, game.n_producers, game.dim).astype(game.users.dtype)
    return _riemannian_jit(game.users, game.weights, s, game.tau, user_batch)


@functools.partial(jax.jit, static_argnums=(4,))
def _riemannian_jit(users, weights, s, tau, user_batch):
    _, g = utilities_and_gradients(users, weights, s, tau, user_batch)
    return tangent_project(s, g)


def _require_softmax(game: ExposureGame) -> None:
    if float(game.tau) == 0.0:
        raise ValueError(
            "tau = 0 (hardmax): utilities are piecewise constant, gradients are not "
            "informative; use widelab_games.hardmax for tau = 0"
        )
