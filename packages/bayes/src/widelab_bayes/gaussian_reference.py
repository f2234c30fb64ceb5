"""Samplers for targets close to N(0, I): preconditioned Crank-Nicolson and elliptical slice.

Written as ``pi(x) ∝ N(x; 0, I) exp(l(x))`` with ``l(x) = log pi(x) + |x|^2 / 2``, a
target whose "likelihood" ``l`` is nearly flat is what the repriorised coordinates of
Hron et al. 2022 give for wide networks (the hidden weights approach their N(0, I)
prior and ``phi`` is exactly N(0, I)). Both samplers propose moves that leave
``N(0, I)`` invariant, so only ``l`` decides, and need no gradients:

* preconditioned Crank-Nicolson (Cotter, Roberts, Stuart, White 2013, eq. 4.1):
  ``x' = sqrt(1 - beta^2) x + beta xi`` with ``xi ~ N(0, I)``, accepted with probability
  ``min(1, exp(l(x') - l(x)))``; ``beta`` is tuned during warm-up.
* elliptical slice sampling (Murray, Adams, MacKay 2010, Fig. 2): a slice level
  ``log y = l(x) + log u``, an ellipse ``x cos t + nu sin t`` through ``x`` and
  ``nu ~ N(0, I)``, and a bracket on ``t`` shrunk towards 0 until a point above the
  slice is found; every transition moves, with no tuning.

Both use the drivers' summary (:class:`~widelab_bayes.runs.SampleResult`): stored
projections, per-chain running moments, acceptance, non-finite proposals, and the
number of density evaluations (``gradients_per_chain`` is 0).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .adaptation import _dual_averaging
from .runs import (
    LogDensity,
    Projection,
    SampleResult,
    _bind,
    _check_init,
    _draws,
    _projection,
    _result,
    _timed,
)


class ReferenceState(NamedTuple):
    """Position and its ``l(x) = log pi(x) + |x|^2 / 2`` (the non-Gaussian part)."""

    position: jax.Array
    loglik: jax.Array


class ReferenceInfo(NamedTuple):
    """What one transition did: acceptance (probability for pCN; whether the first
    point on the ellipse was taken for elliptical slice), density evaluations, whether a
    non-finite density was met, and (elliptical slice) whether the bracket ran out."""

    accepted: jax.Array
    acceptance_prob: jax.Array
    evaluations: jax.Array
    nonfinite: jax.Array
    exhausted: jax.Array


def gaussian_reference_loglik(logdensity_fn: LogDensity) -> LogDensity:
    """``l(x) = log pi(x) + |x|^2 / 2``: the target's density relative to ``N(0, I)``."""

    def loglik(x):
        return logdensity_fn(x) + 0.5 * jnp.sum(x * x)

    return loglik


def reference_init(position: jax.Array, logdensity_fn: LogDensity) -> ReferenceState:
    """Start a chain at a flat ``(D,)`` position."""
    if position.ndim != 1:
        raise ValueError(f"position must be a flat (D,) array, got shape {position.shape}")
    return ReferenceState(position, gaussian_reference_loglik(logdensity_fn)(position))


def pcn_step(
    key: jax.Array, state: ReferenceState, logdensity_fn: LogDensity, beta: float | jax.Array
) -> tuple[ReferenceState, ReferenceInfo]:
    """One preconditioned Crank-Nicolson transition (Cotter et al. 2013, eq. 4.1).

    ``x' = sqrt(1 - beta^2) x + beta xi`` leaves ``N(0, I)`` invariant, so the
    Metropolis-Hastings ratio is ``exp(l(x') - l(x))``; a non-finite ``l(x')`` is
    rejected and counted.

    Args:
        key: a ``jax.random`` key.
        state: current state.
        logdensity_fn: the target's log density (not ``l``).
        beta: move size in ``(0, 1]`` (``1`` proposes independent prior draws).

    Returns:
        ``(new_state, info)``.
    """
    k_xi, k_u = jax.random.split(key)
    x = state.position
    b = jnp.asarray(beta, x.dtype)
    x_new = jnp.sqrt(1.0 - b * b) * x + b * jax.random.normal(k_xi, x.shape, x.dtype)
    l_new = gaussian_reference_loglik(logdensity_fn)(x_new)
    finite = jnp.isfinite(l_new)
    log_ratio = jnp.where(finite, l_new - state.loglik, -jnp.inf)
    prob = jnp.minimum(1.0, jnp.exp(log_ratio))
    accepted = jnp.log(jax.random.uniform(k_u, (), x.dtype)) < log_ratio
    new = ReferenceState(jnp.where(accepted, x_new, x), jnp.where(accepted, l_new, state.loglik))
    info = ReferenceInfo(accepted, prob, jnp.ones((), jnp.int32), ~finite, jnp.zeros((), bool))
    return new, info


def elliptical_slice_step(
    key: jax.Array, state: ReferenceState, logdensity_fn: LogDensity, max_shrinks: int = 100
) -> tuple[ReferenceState, ReferenceInfo]:
    """One elliptical slice sampling transition (Murray, Adams, MacKay 2010, Fig. 2).

    The bracket ``[t - 2 pi, t]`` around the ellipse ``x cos t + nu sin t`` shrinks
    towards ``t = 0`` (the current point, always on the slice) until a point with
    ``l > log y`` is found. If ``max_shrinks`` proposals all fail (only possible in
    floating point, e.g. with non-finite densities) the chain stays and
    ``info.exhausted`` is set.

    Args:
        key: a ``jax.random`` key.
        state: current state.
        logdensity_fn: the target's log density (not ``l``).
        max_shrinks: bound on proposals per transition.

    Returns:
        ``(new_state, info)``.
    """
    k_nu, k_u, k_t, k_loop = jax.random.split(key, 4)
    x = state.position
    dtype = x.dtype
    loglik = gaussian_reference_loglik(logdensity_fn)
    nu = jax.random.normal(k_nu, x.shape, dtype)
    log_y = state.loglik + jnp.log(jax.random.uniform(k_u, (), dtype))
    t0 = jax.random.uniform(k_t, (), dtype, 0.0, 2.0 * math.pi)

    def propose(t):
        x_new = x * jnp.cos(t) + nu * jnp.sin(t)
        return x_new, loglik(x_new)

    x1, l1 = propose(t0)

    def cond(c):
        _, _, _, _, l_new, n, _, _ = c
        return ~(jnp.isfinite(l_new) & (l_new > log_y)) & (n < max_shrinks)

    def body(c):
        t, lo, hi, _, l_new, n, bad, k = c
        lo = jnp.where(t < 0, t, lo)
        hi = jnp.where(t < 0, hi, t)
        k, k_draw = jax.random.split(k)
        t = jax.random.uniform(k_draw, (), dtype, lo, hi)
        x_new, l_new = propose(t)
        return t, lo, hi, x_new, l_new, n + 1, bad | ~jnp.isfinite(l_new), k

    init = (t0, t0 - 2.0 * math.pi, t0, x1, l1, jnp.ones((), jnp.int32), ~jnp.isfinite(l1), k_loop)
    _, _, _, x_new, l_new, n, bad, _ = jax.lax.while_loop(cond, body, init)
    ok = jnp.isfinite(l_new) & (l_new > log_y)
    new = ReferenceState(jnp.where(ok, x_new, x), jnp.where(ok, l_new, state.loglik))
    first = ok & (n == 1)
    info = ReferenceInfo(first, first.astype(dtype), n, bad, ~ok)
    return new, info


def _run(key, logdensity_fn, init_positions, data, cfg) -> SampleResult:
    """Compile (or reuse) and run :func:`_reference_program`; summarise its output."""
    chains = init_positions.shape[0]
    dtype = init_positions.dtype
    static = (
        logdensity_fn,
        cfg["project"],
        bool(cfg["project_key"]),
        data is not None,
        cfg["step"],
        int(cfg["num_warmup"]),
        int(cfg["num_samples"]),
        int(cfg["thin"]),
        bool(cfg["adapt"]),
    )
    settings = (jnp.asarray(cfg["beta"], dtype), jnp.asarray(cfg["target"], dtype))
    (proj, mom, stats, beta, warm_evals), seconds, compile_s = _timed(
        _reference_program, static, key, init_positions, data, settings
    )
    evals = float(np.sum(np.asarray(stats[3]))) / chains
    return _result(
        proj,
        mom,
        stats,
        beta,
        seconds,
        compile_s,
        nonfinite=int(np.sum(stats[2])),
        gradients_per_chain=0.0,
        warmup_gradients_per_chain=0.0,
        density_evaluations_per_chain=evals,
    )


def _pcn(key, state, logdensity_fn, beta, max_shrinks):
    return pcn_step(key, state, logdensity_fn, beta)


def _elliptical(key, state, logdensity_fn, beta, max_shrinks):
    return elliptical_slice_step(key, state, logdensity_fn, max_shrinks)


def _reference_program(static, key, init_positions, data, settings):
    """The shared driver: warm-up (tuning pCN's ``beta`` by dual averaging), then
    ``num_samples`` stored draws of ``thin`` transitions each."""
    logdensity_fn, project, project_key, has_data, (kind, max_shrinks) = static[:5]
    num_warmup, num_samples, thin, adapt = static[5:]
    beta0, target = settings
    logdensity_fn = _bind(logdensity_fn, data, has_data)
    project = _bind(project, data, has_data)
    step = _pcn if kind == "pcn" else _elliptical
    chains = init_positions.shape[0]
    dtype = init_positions.dtype

    k_warm, k_samp = jax.random.split(key)
    states = jax.vmap(reference_init, (0, None))(init_positions, logdensity_fn)

    def vstep(k, states, log_beta):
        beta = jnp.minimum(jnp.exp(log_beta), 1.0)
        return jax.vmap(step, (0, 0, None, None, None))(
            jax.random.split(k, chains), states, logdensity_fn, beta, max_shrinks
        )

    da0, update = _dual_averaging(jnp.log(beta0), target)

    def warm(carry, inp):
        states, da, evals = carry
        t, k = inp
        states, info = vstep(k, states, da[0])
        if adapt:
            da = update(da, t, jnp.mean(info.acceptance_prob))
        return (states, da, evals + info.evaluations), None

    ts = jnp.arange(1, num_warmup + 1, dtype=dtype)
    izero = jnp.zeros((chains,), jnp.int32)
    (states, da, warm_evals), _ = jax.lax.scan(
        warm, (states, da0, izero), (ts, jax.random.split(k_warm, num_warmup))
    )
    log_beta = jnp.minimum(da[1] if (adapt and num_warmup > 0) else da0[0], 0.0)

    def one(carry, k):
        states, acc, exhausted, nonfinite, evals = carry
        states, info = vstep(k, states, log_beta)
        carry = (
            states,
            acc + info.acceptance_prob,
            exhausted + info.exhausted,
            nonfinite + info.nonfinite,
            evals + info.evaluations,
        )
        return carry, None

    def advance(states, k):
        zero = jnp.zeros((chains,), dtype)
        (states, acc, exhausted, nonfinite, evals), _ = jax.lax.scan(
            one, (states, zero, izero, izero, izero), jax.random.split(k, thin)
        )
        return states, (acc / thin, exhausted, nonfinite, evals)

    proj, mom, stats = _draws(
        advance, states, init_positions, k_samp, num_samples, project, project_key
    )
    return proj, mom, stats, jnp.exp(log_beta), jnp.mean(warm_evals)


def _check_common(init_positions, num_warmup, num_samples, thin, project, project_key):
    init_positions = _check_init(init_positions, num_warmup, num_samples)
    if isinstance(thin, bool) or int(thin) < 1:
        raise ValueError(f"thin must be an integer >= 1, got {thin!r}")
    return init_positions, _projection(project, project_key)


def sample_pcn(
    key: jax.Array,
    logdensity_fn: LogDensity,
    init_positions: jax.Array,
    *,
    num_warmup: int,
    num_samples: int,
    project: Projection | None = None,
    beta: float = 0.5,
    target_accept: float = 0.3,
    adapt: bool = True,
    thin: int = 1,
    project_key: bool = False,
    data=None,
) -> SampleResult:
    """Preconditioned Crank-Nicolson on many chains at once (Cotter et al. 2013, eq. 4.1).

    During warm-up the shared move size ``beta`` is tuned by dual averaging (Hoffman &
    Gelman 2014, Alg. 5) towards ``target_accept`` (mean over chains), capped at 1;
    afterwards it is fixed, so every chain targets ``pi``.

    Args:
        key: a ``jax.random`` key.
        logdensity_fn: log density of a flat ``(D,)`` position; it should be close to
            ``N(0, I)`` for pCN to mix well (e.g. repriorised coordinates).
        init_positions: ``(chains, D)`` starting points.
        num_warmup: transitions used for adaptation (not stored).
        num_samples: stored draws per chain.
        project: as in :func:`~widelab_bayes.sample_ghmc`.
        beta: initial (or, without adaptation, fixed) move size in ``(0, 1]``.
        target_accept: target mean acceptance probability in ``(0, 1)``.
        adapt: tune ``beta`` during warm-up.
        thin: transitions per stored draw.
        project_key: as in :func:`~widelab_bayes.sample_ghmc`.
        data: as in :func:`~widelab_bayes.sample_ghmc` (arrays passed to
            ``logdensity_fn`` and ``project``; the compiled run is reused across calls).

    Returns:
        A :class:`~widelab_bayes.SampleResult` with ``step_size`` the final ``beta``,
        ``gradients_per_chain = 0`` and ``density_evaluations_per_chain = num_samples *
        thin``; ``divergences`` is always 0.

    Raises:
        ValueError: bad shapes, non-finite starting points or bad settings.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> res = sample_pcn(jax.random.key(0), lambda v: -0.5 * jnp.sum(v * v),
        ...                  jnp.zeros((2, 3)), num_warmup=10, num_samples=20)
        >>> res.projections.shape, res.density_evaluations_per_chain
        ((2, 20, 3), 20.0)
    """
    init_positions, project = _check_common(
        init_positions, num_warmup, num_samples, thin, project, project_key
    )
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must be in (0, 1], got {beta!r}")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")
    cfg = dict(
        num_warmup=int(num_warmup),
        num_samples=int(num_samples),
        thin=int(thin),
        adapt=adapt,
        beta=beta,
        target=target_accept,
        project=project,
        project_key=project_key,
        step=("pcn", 0),
    )
    return _run(key, logdensity_fn, init_positions, data, cfg)


def sample_elliptical_slice(
    key: jax.Array,
    logdensity_fn: LogDensity,
    init_positions: jax.Array,
    *,
    num_warmup: int,
    num_samples: int,
    project: Projection | None = None,
    max_shrinks: int = 100,
    thin: int = 1,
    project_key: bool = False,
    data=None,
) -> SampleResult:
    """Elliptical slice sampling on many chains at once (Murray, Adams, MacKay 2010).

    No tuning: the warm-up transitions only move the chains towards the typical set.

    Args:
        key: a ``jax.random`` key.
        logdensity_fn: log density of a flat ``(D,)`` position, close to ``N(0, I)``.
        init_positions: ``(chains, D)`` starting points.
        num_warmup: transitions before storing (burn-in).
        num_samples: stored draws per chain.
        project: as in :func:`~widelab_bayes.sample_ghmc`.
        max_shrinks: bound on proposals per transition (see :func:`elliptical_slice_step`).
        thin: transitions per stored draw.
        project_key: as in :func:`~widelab_bayes.sample_ghmc`.
        data: as in :func:`~widelab_bayes.sample_ghmc` (arrays passed to
            ``logdensity_fn`` and ``project``; the compiled run is reused across calls).

    Returns:
        A :class:`~widelab_bayes.SampleResult`: ``acceptance_rate`` is the fraction of
        transitions that took the first point on the ellipse, ``divergences`` counts
        transitions whose bracket ran out, ``density_evaluations_per_chain`` the
        proposals made after warm-up, ``gradients_per_chain = 0``, ``step_size`` 1.

    Raises:
        ValueError: bad shapes, non-finite starting points or bad settings.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> res = sample_elliptical_slice(jax.random.key(0), lambda v: -0.5 * jnp.sum(v * v),
        ...                               jnp.zeros((2, 3)), num_warmup=5, num_samples=20)
        >>> res.acceptance_rate  # the target is the reference N(0, I): always the first point
        1.0
    """
    init_positions, project = _check_common(
        init_positions, num_warmup, num_samples, thin, project, project_key
    )
    if isinstance(max_shrinks, bool) or int(max_shrinks) < 1:
        raise ValueError(f"max_shrinks must be an integer >= 1, got {max_shrinks!r}")

    cfg = dict(
        num_warmup=int(num_warmup),
        num_samples=int(num_samples),
        thin=int(thin),
        adapt=False,
        beta=1.0,
        target=0.5,
        project=project,
        project_key=project_key,
        step=("elliptical", int(max_shrinks)),
    )
    return _run(key, logdensity_fn, init_positions, data, cfg)
