"""MCMC samplers: generalised HMC (the sampler of Hron et al. 2022) and blackjax baselines.

Every sampler works on flat position vectors and runs many chains at once with
``jax.vmap``. To keep memory flat for wide networks, a run stores only a user-chosen
projection of each draw plus per-chain running moments of the positions (see
:mod:`widelab_bayes.runs`). Divergent transitions and proposals with a non-finite
density are counted and reported, never silently dropped.

The pieces live in their own modules: the transition kernel in
:mod:`~widelab_bayes.ghmc`, warm-up adaptation in :mod:`~widelab_bayes.adaptation`,
the run summary in :mod:`~widelab_bayes.runs` and the blackjax baselines in
:mod:`~widelab_bayes.baselines`; this module holds the GHMC driver and re-exports
the public names.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .adaptation import _dual_averaging, _warmup_stages
from .baselines import sample_blackjax
from .ghmc import GHMCInfo, GHMCState, ghmc_init, ghmc_step
from .runs import (
    LogDensity,
    Projection,
    SampleResult,
    _bind,
    _check_init,
    _draws,
    _moments0,
    _projection,
    _result,
    _timed,
    _welford,
    clear_program_cache,
    flat_logdensity,
    precompile,
    program_cache_info,
)


def sample_ghmc(
    key: jax.Array,
    logdensity_fn: LogDensity,
    init_positions: jax.Array,
    *,
    num_warmup: int,
    num_samples: int,
    project: Projection | None = None,
    step_size: float = 0.1,
    persistence: float = 0.9,
    target_accept: float = 0.9,
    adapt_step_size: bool = True,
    adapt_scale: bool = False,
    u_drift: float | None = None,
    thin: int = 1,
    project_key: bool = False,
    data=None,
) -> SampleResult:
    """Run generalised HMC on many chains at once (vmap), storing only projections.

    During warm-up the shared step size is tuned by dual averaging (Hoffman & Gelman
    2014, Alg. 5) towards ``target_accept`` (mean over chains); afterwards it is fixed.
    With ``adapt_scale`` the warm-up follows Stan's schedule: after an initial buffer,
    doubling windows each estimate every chain's per-coordinate variance, which becomes
    that chain's diagonal scale ``s = sqrt(var)`` (a diagonal mass matrix
    ``diag(var)^-1``, regularised towards ``1e-3`` as Stan does) for the next window;
    the step size is tuned afresh in every stage. The kernel of every chain is fixed
    after warm-up, so each chain targets the posterior.

    Args:
        key: a ``jax.random`` key.
        logdensity_fn: log density of a flat ``(D,)`` position.
        init_positions: ``(chains, D)`` starting points.
        num_warmup: transitions used for adaptation (not stored).
        num_samples: transitions stored after warm-up.
        project: maps a ``(D,)`` position to an ``(m,)`` summary to store; defaults to
            the first ``min(D, 8)`` coordinates.
        step_size: initial (or, without adaptation, fixed) leapfrog step.
        persistence: momentum persistence ``a`` of :func:`ghmc_step`.
        target_accept: target mean acceptance probability for the adaptation.
        adapt_step_size: tune the step size during warm-up.
        adapt_scale: estimate a per-chain diagonal mass matrix during warm-up (needs
            ``num_warmup >= 20``).
        u_drift: use Neal's (2020) non-reversible uniform with this drift (see
            :func:`ghmc_step`); ``None`` for the standard accept/reject rule.
        thin: transitions per stored draw (the projection is evaluated only on
            stored draws, which matters when it is costlier than a gradient).
        project_key: call ``project(position, key)`` with a fresh ``jax.random`` key
            for every chain and stored draw. This is how a collapsed (Gibbs) sampler
            stores draws of variables the chain integrates out, e.g. the readout of
            :class:`~widelab_bayes.repriorise.Repriorised` drawn exactly given the
            hidden weights.
        data: optional pytree of arrays passed as the last argument of
            ``logdensity_fn`` and ``project`` (``logdensity_fn(position, data)``,
            ``project(position, data)`` or ``project(position, key, data)``). The run is
            compiled once per function, integer setting and shape and reused by later
            calls (:func:`~widelab_bayes.program_cache_info`), so data passed here, rather
            than closed over by a fresh function, costs no new compilation.

    Returns:
        A :class:`SampleResult`; one gradient evaluation per transition, so
        ``gradients_per_chain = num_samples * thin``.

    Raises:
        ValueError: bad shapes, non-finite starting points, or bad settings.
    """
    init_positions = _check_init(init_positions, num_warmup, num_samples)
    if int(thin) < 1:
        raise ValueError(f"thin must be >= 1, got {thin}")
    if not 0.0 <= persistence < 1.0:
        raise ValueError(f"persistence must be in [0, 1), got {persistence}")
    if not (step_size > 0 and 0.0 < target_accept < 1.0):
        raise ValueError(
            f"need step_size > 0 and 0 < target_accept < 1, got {step_size}, {target_accept}"
        )
    if u_drift is not None and not 0.0 < u_drift <= 1.0:
        raise ValueError(f"u_drift must be in (0, 1], got {u_drift}")
    if adapt_scale and num_warmup < 20:
        raise ValueError(f"adapt_scale needs num_warmup >= 20, got {num_warmup}")
    project = _projection(project, project_key)
    dtype = init_positions.dtype
    static = (
        logdensity_fn,
        project,
        bool(project_key),
        data is not None,
        tuple(_warmup_stages(int(num_warmup), adapt_scale)),
        bool(adapt_step_size),
        u_drift is not None,
        int(thin),
        int(num_samples),
    )
    settings = tuple(
        jnp.asarray(v, dtype) for v in (step_size, persistence, target_accept, u_drift or 0.0)
    )
    (proj, mom, stats, eps, scale), seconds, compile_s = _timed(
        _ghmc_program, static, key, init_positions, data, settings
    )
    return _result(
        proj,
        mom,
        stats,
        eps,
        seconds,
        compile_s,
        scale=np.asarray(scale),
        nonfinite=int(np.sum(stats[2])),
        gradients_per_chain=float(num_samples * thin),
        warmup_gradients_per_chain=float(num_warmup),
    )


def _ghmc_program(static, key, init_positions, data, settings):
    """The whole GHMC run (warm-up and stored draws) as one traced program; ``static``
    and ``settings`` as built by :func:`sample_ghmc`."""
    logdensity_fn, project, project_key, has_data, stages, adapt_step_size = static[:6]
    use_drift, thin, num_samples = static[6:]
    step_size, persistence, target_accept, u_drift = settings
    logdensity_fn = _bind(logdensity_fn, data, has_data)
    project = _bind(project, data, has_data)
    u_drift = u_drift if use_drift else None
    chains, dim = init_positions.shape
    dtype = init_positions.dtype

    k_init, k_warm, k_samp = jax.random.split(key, 3)
    states = jax.vmap(ghmc_init, (0, 0, None))(
        jax.random.split(k_init, chains), init_positions, logdensity_fn
    )

    def step(k, states, eps, scale):
        return jax.vmap(ghmc_step, (0, 0, None, None, None, None, 0, None))(
            jax.random.split(k, chains),
            states,
            logdensity_fn,
            eps,
            persistence,
            1000.0,
            scale,
            u_drift,
        )

    def warm(states, scale, log_eps0, n, k, collect):
        da0, update = _dual_averaging(log_eps0, target_accept)
        mom0 = _moments0(chains, dim, dtype)
        if n == 0:  # nothing to trace (and compile)
            return states, log_eps0, mom0

        def body(carry, inp):
            states, da, mom = carry
            t, k = inp
            states, info = step(k, states, jnp.exp(da[0]), scale)
            if adapt_step_size:
                da = update(da, t, jnp.mean(info.acceptance_prob))
            if collect:
                mom = jax.vmap(_welford)(mom, states.position)
            return (states, da, mom), None

        ts = jnp.arange(1, n + 1, dtype=dtype)
        (states, da, mom), _ = jax.lax.scan(body, (states, da0, mom0), (ts, jax.random.split(k, n)))
        log_eps = da[1] if (adapt_step_size and n > 0) else log_eps0
        return states, log_eps, mom

    log_eps = jnp.log(step_size)
    scale = jnp.ones((chains, dim), dtype)
    keys = jax.random.split(k_warm, len(stages))
    for (n, collect), k in zip(stages, keys):
        states, log_eps, mom = warm(states, scale, log_eps, n, k, collect)
        if collect:
            cnt, _, m2 = mom
            var = m2 / cnt[:, None]
            w = cnt[:, None] / (cnt[:, None] + 5.0)
            scale = jnp.sqrt(w * var + 1e-3 * (1.0 - w))
    eps = jnp.exp(log_eps)

    def one(carry, k):
        states, acc, div, nonfinite = carry
        states, info = step(k, states, eps, scale)
        acc = acc + info.acceptance_prob
        return (states, acc, div + info.divergent, nonfinite + info.nonfinite), None

    def advance(states, k):
        zero = jnp.zeros((chains,), dtype)
        izero = jnp.zeros((chains,), jnp.int32)
        (states, acc, div, nonfinite), _ = jax.lax.scan(
            one, (states, zero, izero, izero), jax.random.split(k, thin)
        )
        return states, (acc / thin, div, nonfinite)

    proj, mom, stats = _draws(
        advance, states, init_positions, k_samp, num_samples, project, project_key
    )
    return proj, mom, stats, eps, scale


__all__ = [
    "GHMCInfo",
    "GHMCState",
    "SampleResult",
    "clear_program_cache",
    "flat_logdensity",
    "ghmc_init",
    "ghmc_step",
    "precompile",
    "program_cache_info",
    "sample_blackjax",
    "sample_ghmc",
]
