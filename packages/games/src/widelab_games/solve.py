"""Pure local Nash equilibrium search in softmax exposure games.

Hron et al. (2023), Section 3 (numerical equilibrium search for the audit): every producer runs gradient ascent
on its own utility at the same time (simultaneous gradient ascent), either on
unconstrained parameters ``theta_i`` with ``s_i = theta_i / ||theta_i||`` (normalised
parameters) or directly on the sphere with a Riemannian step and a retraction. Many
restarts run at once, sharing matrix products over blocks of users; because gradients vanish as ``tau -> 0``, small
temperatures are reached by continuation: solve at a large ``tau`` and warm-start the next
smaller one. Candidate profiles are then classified by :mod:`.secondorder` and their
distance from equilibrium is bounded below by best-response ascent
(:func:`best_response_gains`).

Stopping rule (this package's; see the README): an ascent stops once every producer's scaled Riemannian gradient norm
``tau * ||grad_R u_i||`` is at most ``tol`` (a first-order critical point), or after
``max_steps``. Adam's step size decays as ``lr / sqrt(1 + t / decay_steps)`` so that
iterates settle instead of oscillating around the critical point.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from widelab_core.validate import require_int

from .game import (
    ExposureGame,
    _blocks,
    _require_softmax,
    check_profile,
    normalize,
    tangent_project,
)

METHODS = ("normalized", "sphere")


class EquilibriumSearch(NamedTuple):
    """Result of :func:`find_equilibria` (one entry per restart).

    Attributes:
        profiles: ``(R, n, d)`` final strategies on the sphere.
        utilities: ``(R, n)`` producers' utilities at the final profiles.
        grad_norm: ``(R,)`` largest scaled Riemannian gradient ``tau * ||grad_R u_i||``.
        steps: ``(R,)`` ascent steps taken.
        converged: ``(R,)`` whether the stopping rule fired before ``max_steps``.
        tau: the temperature.
    """

    profiles: np.ndarray
    utilities: np.ndarray
    grad_norm: np.ndarray
    steps: np.ndarray
    converged: np.ndarray
    tau: float


def _schedule(lr, decay_steps):
    return lambda t: lr / jnp.sqrt(1.0 + t / decay_steps)


def _auto_block(n_users: int, columns: int) -> int:
    """Users per block: one block's ``(B, R * n)`` float32 scores take about 2 MiB, so a
    block's softmax stays in cache; rounded up to a multiple of 8, at most ``n_users``."""
    b = max(64, min(2048, (1 << 19) // max(columns, 1)))
    return min(n_users, -(-b // 8) * 8)


def _profiles_grad(ub, wb, s, tau, *, with_util=False):
    """Utilities ``(R, n)`` (zeros unless ``with_util``) and own-strategy Euclidean
    gradients ``(R, n, d)`` for ``R`` profiles ``s (R, n, d)`` at once, summed over blocks.

    All ``R * n`` producer vectors share one matrix product per block, ``(B, d) x (d,
    R n)`` for the scores and ``(R n, B) x (B, d)`` for ``E_c[p_i (1 - p_i) c] / tau``
    (see :func:`.game.utilities_and_gradients`), and a block's softmax stays in cache.
    """
    r, n, d = s.shape
    sf = (s / tau).reshape(r * n, d)

    def body(acc, blk):
        u, w = blk
        p = jax.nn.softmax((u @ sf.T).reshape(u.shape[0], r, n), axis=-1)
        coef = (w[:, None, None] * p * (1.0 - p)).reshape(u.shape[0], r * n)
        g = acc[1] + coef.T @ u
        util = acc[0] + (w @ p.reshape(u.shape[0], r * n)) if with_util else acc[0]
        return (util, g), None

    zero = (jnp.zeros((r * n,), s.dtype), jnp.zeros((r * n, d), s.dtype))
    (util, g), _ = jax.lax.scan(body, zero, (ub, wb))
    return util.reshape(r, n), g.reshape(r, n, d) / tau


@functools.partial(jax.jit, static_argnames=("method", "user_batch", "decay_steps"))
def _ascend(users, weights, tau, theta0, lr, tol, max_steps, *, method, user_batch, decay_steps):
    """Simultaneous ascent for a batch of restarts ``theta0 (R, n, d)``.

    The restarts advance together inside one ``while_loop``: a step computes every
    restart's gradients with shared matrix products (:func:`_profiles_grad`), and a restart
    whose stopping rule has fired keeps its iterate, Adam state and step count, exactly as
    ``vmap`` of a per-restart ``while_loop`` would.
    """
    r, n, _ = theta0.shape
    block = min(user_batch, users.shape[0]) if user_batch else _auto_block(users.shape[0], r * n)
    ub, wb = _blocks(users, weights, block, fill=0.0)  # zero user, zero weight: adds nothing
    opt = optax.adam(_schedule(lr, decay_steps))

    def crit_and_grad(theta):
        s = normalize(theta)
        _, g = _profiles_grad(ub, wb, s, tau)
        rg = tangent_project(s, g)
        return rg, tau * jnp.max(jnp.linalg.norm(rg, axis=-1), axis=-1)

    def update(th, st, rg):  # one restart
        if method == "normalized":
            upd, st = opt.update(-rg / jnp.linalg.norm(th, axis=-1, keepdims=True), st, th)
            return th + upd, st
        s = normalize(th)  # Riemannian step on the sphere, then the projection retraction
        upd, st = opt.update(-rg, st, s)
        return normalize(s + tangent_project(s, upd)), st

    def running(carry):
        return (carry[2] < max_steps) & (carry[3] > tol)

    def body(carry):
        th, st, t, crit, rg = carry
        live = running(carry)

        def keep(new, old):
            return jnp.where(live.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

        th_new, st_new = jax.vmap(update)(th, st, rg)
        th = keep(th_new, th)
        st = jax.tree.map(keep, st_new, st)
        rg_new, crit_new = crit_and_grad(th)
        return th, st, t + live.astype(t.dtype), keep(crit_new, crit), keep(rg_new, rg)

    rg0, crit0 = crit_and_grad(theta0)
    init = (theta0, jax.vmap(opt.init)(theta0), jnp.zeros((r,), jnp.int32), crit0, rg0)
    th, _, t, crit, _ = jax.lax.while_loop(lambda c: jnp.any(running(c)), body, init)
    s = normalize(th)
    util, _ = _profiles_grad(ub, wb, s, tau, with_util=True)
    return s, util, crit, t


def _rng(key, *salt: int) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key (and optional salt): host-side sampling
    needs no XLA compilation."""
    if isinstance(key, np.random.Generator):
        return key
    try:
        data = np.asarray(jax.random.key_data(key)).ravel()
    except TypeError:  # a raw uint32 key
        data = np.asarray(key).ravel()
    return np.random.default_rng([int(x) for x in data] + [int(t) for t in salt])


def random_profiles(key, n_restarts: int, n_producers: int, dim: int) -> np.ndarray:
    """``(R, n, d)`` profiles drawn uniformly on the sphere (normalised Gaussians).

    Args:
        key: JAX random key (or a NumPy generator).
        n_restarts: ``R``.
        n_producers: ``n``.
        dim: ``d``.

    Returns:
        A float64 NumPy array of unit rows.
    """
    x = _rng(key).standard_normal((n_restarts, n_producers, dim))
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def find_equilibria(
    game: ExposureGame,
    *,
    key=None,
    n_restarts: int = 8,
    init=None,
    method: str = "normalized",
    learning_rate: float = 0.05,
    max_steps: int = 2000,
    tol: float = 1e-4,
    decay_steps: int = 100,
    user_batch: int | None = None,
) -> EquilibriumSearch:
    """Search for pure local Nash equilibria by simultaneous gradient ascent.

    Hron et al. (2023), Section 3: gradient ascent of every ``u_i`` (Eq. 1) in its own
    strategy, all producers at once, from many random restarts; here the restarts are
    vectorised with ``jax.vmap`` and each stops by the rule in the module docstring.

    Args:
        game: a softmax exposure game (``tau > 0``).
        key: JAX random key (or NumPy generator) for the random restarts (ignored when
            ``init`` is given).
        n_restarts: number of restarts when ``init`` is not given.
        init: optional ``(R, n, d)`` (or ``(n, d)``) starting profiles (warm start).
        method: ``"normalized"`` (Adam on ``theta`` with ``s = theta/||theta||``) or
            ``"sphere"`` (Riemannian Adam-direction step with projection retraction).
        learning_rate: initial Adam step size.
        max_steps: cap on ascent steps per restart.
        tol: stopping tolerance on ``tau * max_i ||grad_R u_i||``.
        decay_steps: step-size decay scale (see module docstring).
        user_batch: accumulate sums over blocks of this many users; ``None`` picks a
            block that keeps one block's scores for all restarts in cache.

    Returns:
        An :class:`EquilibriumSearch`.

    Raises:
        ValueError: ``tau == 0``, an unknown method, a bad or empty ``init``, missing
            ``key``, ``user_batch < 1``, ``n_restarts < 1`` or ``max_steps < 1``.
    """
    _require_softmax(game)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if user_batch is not None and (int(user_batch) != user_batch or user_batch < 1):
        raise ValueError(f"user_batch must be a positive integer or None; got {user_batch!r}")
    require_int(max_steps, "max_steps", min=1)
    if init is None:
        require_int(n_restarts, "n_restarts", min=1)
        if key is None:
            raise ValueError("pass key= (random restarts) or init= (starting profiles)")
        theta0 = jnp.asarray(random_profiles(key, n_restarts, game.n_producers, game.dim))
        theta0 = theta0.astype(game.users.dtype)
    else:
        a = np.asarray(init)
        a = a[None] if a.ndim == 2 else a
        if a.ndim != 3 or a.shape[0] == 0:
            raise ValueError(
                f"init must have shape (R, n, d) with R >= 1, or (n, d); got {np.shape(init)}"
            )
        theta0 = np.stack([np.asarray(check_profile(p, game.n_producers, game.dim)) for p in a])
        theta0 = jnp.asarray(theta0, game.users.dtype)
    s, util, crit, steps = _ascend(
        game.users,
        game.weights,
        game.tau,
        theta0,
        jnp.asarray(learning_rate, game.users.dtype),
        jnp.asarray(tol, game.users.dtype),
        jnp.asarray(int(max_steps), jnp.int32),
        method=method,
        user_batch=user_batch,
        decay_steps=int(decay_steps),
    )
    crit = np.asarray(crit)
    return EquilibriumSearch(
        profiles=np.asarray(s),
        utilities=np.asarray(util),
        grad_norm=crit,
        steps=np.asarray(steps),
        converged=crit <= tol,
        tau=float(game.tau),
    )


def continuation(
    game: ExposureGame,
    taus: Sequence[float],
    *,
    key=None,
    init=None,
    jitter: float = 1e-2,
    **kwargs,
) -> list[EquilibriumSearch]:
    """Equilibrium search along a decreasing temperature path (tau-continuation).

    Gradients of the softmax exposure vanish as ``tau -> 0`` (Hron et al. 2023, Section 3),
    so the search starts at the largest ``tau`` and warm-starts each smaller one from the
    previous solutions.

    Args:
        game: the exposure game (its own ``tau`` is ignored).
        taus: strictly decreasing positive temperatures.
        key: random key for the first stage (unless ``init`` is given).
        init: optional starting profiles for the first stage.
        jitter: standard deviation of the Gaussian perturbation added to each warm
            start, so that a critical point that stops being an equilibrium as ``tau``
            falls (e.g. the collapse to the mean direction) is escaped; needs ``key``.
        **kwargs: passed to :func:`find_equilibria`.

    Returns:
        One :class:`EquilibriumSearch` per temperature, in the order of ``taus``.

    Raises:
        ValueError: empty, non-positive or non-decreasing ``taus``.
    """
    taus = [float(t) for t in taus]
    if not taus:
        raise ValueError("taus is empty")
    if not all(np.isfinite(taus)) or min(taus) <= 0:
        raise ValueError(f"continuation needs finite taus > 0; got {taus}")
    if any(b >= a for a, b in zip(taus, taus[1:])):
        raise ValueError(f"taus must be strictly decreasing; got {taus}")
    if key is None and (init is None or jitter > 0):
        raise ValueError("continuation needs key= (random restarts and warm-start jitter)")
    out = []
    for j, t in enumerate(taus):
        if j > 0 and jitter > 0:
            x = np.asarray(init, np.float64)
            x = x + jitter * _rng(key, j).standard_normal(x.shape)
            init = x / np.linalg.norm(x, axis=-1, keepdims=True)
        res = find_equilibria(game.with_tau(t), key=key, init=init, **kwargs)
        out.append(res._replace(tau=t))
        init = res.profiles
    return out


@functools.partial(jax.jit, static_argnames=("steps",))
def _best_response(users, weights, s, tau, starts, lr, *, steps):
    """Best-response ascent for each producer from ``starts (n, K, d)`` (its own strategy
    first) against fixed others.

    With others fixed, ``p_i(c, x) = sigmoid(<c, x>/tau - L_{-i}(c))`` where ``L_{-i}`` is
    the log-sum-exp of the others' scores, so each ascent only needs an ``(m,)`` vector.
    """
    n = s.shape[0]
    logits = (users @ s.T) / tau  # (m, n)
    mask = jnp.eye(n, dtype=bool)

    def others_lse(i):
        return jax.nn.logsumexp(jnp.where(mask[i][None, :], -jnp.inf, logits), axis=-1)

    lse = jax.vmap(others_lse, out_axes=1)(jnp.arange(n)) if n > 1 else None

    def util(x, l_other):
        if l_other is None:
            return jnp.asarray(1.0, users.dtype)
        return weights @ jax.nn.sigmoid((users @ x) / tau - l_other)

    def rgrad(x, l_other):  # Riemannian gradient of E_c[sigmoid(<c,x>/tau - L_{-i}(c))]
        q = jax.nn.sigmoid((users @ x) / tau - l_other)
        g = ((weights * q * (1.0 - q)) @ users) / tau
        return g - jnp.dot(g, x) * x

    opt = optax.adam(_schedule(lr, 100))

    def ascend(x0, l_other):
        if l_other is None:
            return util(x0, l_other)

        def step(carry, _):
            x, st = carry
            upd, st = opt.update(-rgrad(x, l_other), st, x)
            x = normalize(x + upd - jnp.dot(upd, x) * x)
            return (x, st), None

        (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        return util(x, l_other)

    def per_player(i):
        l_other = lse[:, i] if lse is not None else None
        best = jax.vmap(lambda x0: ascend(x0, l_other))(starts[i]).max()
        return best - util(s[i], l_other)

    return jax.vmap(per_player)(jnp.arange(n))


def best_response_gains(
    game: ExposureGame,
    profile,
    *,
    key,
    n_starts: int = 4,
    steps: int = 300,
    learning_rate: float = 0.05,
) -> np.ndarray:
    """Lower bounds on each producer's gain from a unilateral deviation.

    The epsilon of an epsilon-Nash equilibrium is ``max_i sup_x u_i(x, s_{-i}) - u_i(s)``
    (Hron et al. 2023, Section 3). Each ``sup`` is estimated by Riemannian Adam ascent
    from the producer's current strategy and ``n_starts - 1`` random points (others
    fixed); the result is a lower bound on the true gain, clipped at zero.

    Args:
        game: a softmax game (``tau > 0``).
        profile: ``(n, d)`` strategies.
        key: JAX random key (or NumPy generator) for the random starting points.
        n_starts: starting points per producer (the first is the current strategy).
        steps: ascent steps per start.
        learning_rate: initial Adam step size.

    Returns:
        ``(n,)`` non-negative gains; their maximum estimates epsilon.

    Raises:
        ValueError: ``tau == 0`` or a bad profile.
    """
    _require_softmax(game)
    s = check_profile(profile, game.n_producers, game.dim).astype(game.users.dtype)
    n, d = s.shape
    rnd = random_profiles(key, n, max(int(n_starts) - 1, 0), d)
    starts = np.concatenate([np.asarray(s, np.float64)[:, None, :], rnd], axis=1)
    gains = _best_response(
        game.users,
        game.weights,
        s,
        game.tau,
        jnp.asarray(starts, s.dtype),
        jnp.asarray(learning_rate, s.dtype),
        steps=int(steps),
    )
    return np.maximum(np.asarray(gains), 0.0)
