"""The generalised HMC transition kernel (Horowitz 1991; Hron et al. 2022, Sec. 5).

Pure functions on one chain: :func:`ghmc_init` and :func:`ghmc_step`, the key first,
``(state, info)`` returned; the drivers vmap them over chains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

LogDensity = Callable[[jax.Array], jax.Array]


class GHMCState(NamedTuple):
    """Position, persistent momentum, the cached density and gradient, and the
    signed uniform ``v`` in ``[-1, 1)`` behind the accept/reject decision (only
    used by the non-reversible variant of :func:`ghmc_step`)."""

    position: jax.Array
    momentum: jax.Array
    logdensity: jax.Array
    grad: jax.Array
    v: jax.Array


class GHMCInfo(NamedTuple):
    """What one generalised HMC transition did."""

    accepted: jax.Array
    acceptance_prob: jax.Array
    energy_change: jax.Array
    divergent: jax.Array
    nonfinite: jax.Array


def ghmc_init(key: jax.Array, position: jax.Array, logdensity_fn: LogDensity) -> GHMCState:
    """Start a chain at ``position`` with a fresh standard-normal momentum.

    Args:
        key: a ``jax.random`` key for the momentum.
        position: flat ``(D,)`` array.
        logdensity_fn: unnormalised log density of a flat position.

    Returns:
        The initial :class:`GHMCState`.

    Raises:
        ValueError: ``position`` is not one-dimensional.
    """
    if position.ndim != 1:
        raise ValueError(f"ghmc_init: position must be a flat (D,) array, got {position.shape}")
    k_p, k_v = jax.random.split(key)
    ld, g = jax.value_and_grad(logdensity_fn)(position)
    p = jax.random.normal(k_p, position.shape, position.dtype)
    v = jax.random.uniform(k_v, (), position.dtype, -1.0, 1.0)
    return GHMCState(position, p, ld, g, v)


def ghmc_step(
    key: jax.Array,
    state: GHMCState,
    logdensity_fn: LogDensity,
    step_size: float | jax.Array,
    persistence: float | jax.Array,
    divergence_threshold: float = 1000.0,
    scale: jax.Array | None = None,
    u_drift: float | jax.Array | None = None,
) -> tuple[GHMCState, GHMCInfo]:
    """One generalised HMC transition (Horowitz 1991; Hron et al. 2022, Sec. 5).

    Partial momentum refresh ``p <- a p + sqrt(1 - a^2) xi``, one leapfrog step of size
    ``eps``, Metropolis acceptance with probability ``min(1, exp(-dH))``; on rejection
    the momentum is negated, which keeps the composed kernel reversible w.r.t. the
    target times ``N(p; 0, I)``. One gradient evaluation per transition (the gradient
    at the current point is cached in the state).

    With ``scale = s`` the dynamics run in the coordinates ``z = x / s`` (a diagonal
    mass matrix ``diag(s)^-2``): ``x`` moves by ``eps * s * p`` and the momentum
    is kicked by ``eps * s * grad``.

    With ``u_drift = d`` the accept/reject decision uses Neal's (2020) non-reversible
    uniform: the state's ``v`` in ``[-1, 1)`` moves to ``v + d`` (wrapped), the proposal
    is accepted when ``|v| < exp(-dH)``, and on acceptance ``v <- v exp(dH)``. ``|v|``
    stays uniform and independent of ``(x, p)``, so the target is unchanged, but
    rejections cluster, so the momentum is reversed less often.

    Args:
        key: a ``jax.random`` key.
        state: current state.
        logdensity_fn: unnormalised log density.
        step_size: leapfrog step ``eps``.
        persistence: momentum persistence ``a`` in ``[0, 1)`` (``0`` is plain
            one-step HMC, i.e. MALA).
        divergence_threshold: an energy error above this counts as a divergence.
        scale: optional positive ``(D,)`` per-coordinate scale (default: ones).
        u_drift: optional drift of the non-reversible uniform in ``(0, 1]``; ``None``
            draws a fresh uniform for every decision (the standard rule).

    Returns:
        ``(new_state, info)``.
    """
    k_refresh, k_accept = jax.random.split(key)
    x = state.position
    dtype = x.dtype
    s = jnp.ones((), dtype) if scale is None else jnp.asarray(scale, dtype)
    noise = jax.random.normal(k_refresh, x.shape, dtype)
    a = jnp.asarray(persistence, dtype)
    eps = jnp.asarray(step_size, dtype)
    p = a * state.momentum + jnp.sqrt(1.0 - a * a) * noise
    p_half = p + 0.5 * eps * s * state.grad
    x_new = x + eps * s * p_half
    ld_new, g_new = jax.value_and_grad(logdensity_fn)(x_new)
    p_new = p_half + 0.5 * eps * s * g_new
    h_old = -state.logdensity + 0.5 * jnp.sum(p * p)
    h_new = -ld_new + 0.5 * jnp.sum(p_new * p_new)
    d_h = h_new - h_old
    finite = jnp.isfinite(d_h) & jnp.all(jnp.isfinite(g_new))
    d_h_safe = jnp.where(finite, d_h, jnp.inf)
    accept_prob = jnp.minimum(1.0, jnp.exp(-d_h_safe))
    if u_drift is None:
        accepted = jax.random.uniform(k_accept, (), dtype) < accept_prob
        v = state.v
    else:
        v = jnp.mod(state.v + jnp.asarray(u_drift, dtype) + 1.0, 2.0) - 1.0
        accepted = jnp.abs(v) < accept_prob
        v = jnp.where(accepted, v * jnp.exp(jnp.where(finite, d_h, 0.0)), v)
    new = GHMCState(
        position=jnp.where(accepted, x_new, x),
        momentum=jnp.where(accepted, p_new, -p),
        logdensity=jnp.where(accepted, ld_new, state.logdensity),
        grad=jnp.where(accepted, g_new, state.grad),
        v=v,
    )
    info = GHMCInfo(
        accepted=accepted,
        acceptance_prob=accept_prob,
        energy_change=d_h,
        divergent=finite & (d_h > divergence_threshold),
        nonfinite=~finite,
    )
    return new, info
