"""MCMC samplers: generalised HMC (the sampler of Hron et al. 2022) and blackjax baselines.

Every sampler works on flat position vectors and runs many chains at once with
``jax.vmap``. To keep memory flat for wide networks, a run stores only a user-chosen
projection of each draw (e.g. random projections of test-set predictions, as Hron et
al. 2022 measure ESS in function space) plus per-chain running moments (Welford) of
the positions, never the draws themselves. Divergent transitions and proposals with a
non-finite density are counted and reported, never silently dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

LogDensity = Callable[[jax.Array], jax.Array]
Projection = Callable[[jax.Array], jax.Array]


class GHMCState(NamedTuple):
    """Position, persistent momentum, and the cached density and gradient."""

    position: jax.Array
    momentum: jax.Array
    logdensity: jax.Array
    grad: jax.Array


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
    ld, g = jax.value_and_grad(logdensity_fn)(position)
    return GHMCState(position, jax.random.normal(key, position.shape, position.dtype), ld, g)


def ghmc_step(
    key: jax.Array,
    state: GHMCState,
    logdensity_fn: LogDensity,
    step_size: float | jax.Array,
    persistence: float | jax.Array,
    divergence_threshold: float = 1000.0,
) -> tuple[GHMCState, GHMCInfo]:
    """One generalised HMC transition (Horowitz 1991; Hron et al. 2022, Sec. 5).

    Partial momentum refresh ``p <- a p + sqrt(1 - a^2) xi``, one leapfrog step of size
    ``eps``, Metropolis acceptance with probability ``min(1, exp(-dH))``; on rejection
    the momentum is negated, which keeps the composed kernel reversible w.r.t. the
    target times ``N(p; 0, I)``. One gradient evaluation per transition (the gradient
    at the current point is cached in the state).

    Args:
        key: a ``jax.random`` key.
        state: current state.
        logdensity_fn: unnormalised log density.
        step_size: leapfrog step ``eps``.
        persistence: momentum persistence ``a`` in ``[0, 1)`` (``0`` is plain
            one-step HMC, i.e. MALA).
        divergence_threshold: an energy error above this counts as a divergence.

    Returns:
        ``(new_state, info)``.
    """
    k_refresh, k_accept = jax.random.split(key)
    x = state.position
    noise = jax.random.normal(k_refresh, x.shape, x.dtype)
    a = jnp.asarray(persistence, x.dtype)
    eps = jnp.asarray(step_size, x.dtype)
    p = a * state.momentum + jnp.sqrt(1.0 - a * a) * noise
    p_half = p + 0.5 * eps * state.grad
    x_new = x + eps * p_half
    ld_new, g_new = jax.value_and_grad(logdensity_fn)(x_new)
    p_new = p_half + 0.5 * eps * g_new
    h_old = -state.logdensity + 0.5 * jnp.sum(p * p)
    h_new = -ld_new + 0.5 * jnp.sum(p_new * p_new)
    d_h = h_new - h_old
    finite = jnp.isfinite(d_h) & jnp.all(jnp.isfinite(g_new))
    d_h_safe = jnp.where(finite, d_h, jnp.inf)
    accept_prob = jnp.minimum(1.0, jnp.exp(-d_h_safe))
    accepted = jax.random.uniform(k_accept, (), x.dtype) < accept_prob
    new = GHMCState(
        position=jnp.where(accepted, x_new, x),
        momentum=jnp.where(accepted, p_new, -p),
        logdensity=jnp.where(accepted, ld_new, state.logdensity),
        grad=jnp.where(accepted, g_new, state.grad),
    )
    info = GHMCInfo(
        accepted=accepted,
        acceptance_prob=accept_prob,
        energy_change=d_h,
        divergent=finite & (d_h > divergence_threshold),
        nonfinite=~finite,
    )
    return new, info


class SampleResult(NamedTuple):
    """Summary of a multi-chain run (no draws stored, only projections and moments).

    Attributes:
        projections: ``(chains, draws, m)`` projections of every retained draw.
        mean: ``(chains, D)`` running mean of the positions.
        var: ``(chains, D)`` running (population) variance of the positions.
        acceptance_rate: mean acceptance probability after warm-up.
        divergences: number of divergent transitions after warm-up (all chains).
        nonfinite: number of proposals with a non-finite density or gradient.
        gradients_per_chain: gradient evaluations per chain after warm-up.
        warmup_gradients_per_chain: gradient evaluations per chain during warm-up.
        step_size: the step size used after warm-up.
        seconds: wall time of the compiled sampling run (warm-up included).
        compile_seconds: time spent compiling.
    """

    projections: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    acceptance_rate: float
    divergences: int
    nonfinite: int
    gradients_per_chain: float
    warmup_gradients_per_chain: float
    step_size: float
    seconds: float
    compile_seconds: float


def _welford(carry, x):
    n, mean, m2 = carry
    n = n + 1
    delta = x - mean
    mean = mean + delta / n
    m2 = m2 + delta * (x - mean)
    return n, mean, m2


def _draws(advance, states, init_positions, key, num_samples, project):
    """Scan ``num_samples`` stored draws; ``advance(states, k) -> (states, stats)``.

    Every stored position feeds the per-chain Welford moments and ``project``.
    Returns ``(projections, (n, mean, m2), stats)`` stacked over draws.
    """

    def body(carry, k):
        states, mom = carry
        states, stats = advance(states, k)
        mom = jax.vmap(_welford)(mom, states.position)
        proj = jax.vmap(project)(states.position)
        return (states, mom), (proj, stats)

    zeros = jnp.zeros_like(init_positions)
    mom0 = (jnp.zeros((init_positions.shape[0],), init_positions.dtype), zeros, zeros)
    (_, mom), (proj, stats) = jax.lax.scan(body, (states, mom0), jax.random.split(key, num_samples))
    return proj, mom, stats


def _result(proj, mom, stats, eps, seconds, compile_s, **counts) -> SampleResult:
    """A :class:`SampleResult` from :func:`_draws`' output; ``stats[0]`` is the
    acceptance, ``stats[1]`` the divergence flags; ``counts`` gives ``nonfinite`` and
    the two gradient counts."""
    n, mean, m2 = (np.asarray(v) for v in mom)
    return SampleResult(
        projections=np.swapaxes(np.asarray(proj), 0, 1),
        mean=mean,
        var=m2 / n[:, None],
        acceptance_rate=float(np.mean(stats[0])),
        divergences=int(np.sum(stats[1])),
        step_size=float(eps),
        seconds=seconds,
        compile_seconds=compile_s,
        **counts,
    )


def _check_init(init_positions, num_warmup, num_samples):
    init_positions = jnp.asarray(init_positions)
    if init_positions.ndim != 2:
        raise ValueError(
            f"init_positions must have shape (chains, D), got {tuple(init_positions.shape)}"
        )
    if not bool(jnp.all(jnp.isfinite(init_positions))):
        raise ValueError("init_positions contain non-finite values")
    if int(num_samples) < 1 or int(num_warmup) < 0:
        raise ValueError(f"need num_samples >= 1, num_warmup >= 0; got {num_samples}, {num_warmup}")
    return init_positions


def _timed(fn, *args):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - t1, t1 - t0


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
    thin: int = 1,
) -> SampleResult:
    """Run generalised HMC on many chains at once (vmap), storing only projections.

    During warm-up the shared step size is tuned by dual averaging (Hoffman & Gelman
    2014, Alg. 5) towards ``target_accept`` (mean over chains); afterwards it is fixed.

    Args:
        key: a ``jax.random`` key.
        logdensity_fn: log density of a flat ``(D,)`` position.
        init_positions: ``(chains, D)`` starting points.
        num_warmup: transitions used for step-size adaptation (not stored).
        num_samples: transitions stored after warm-up.
        project: maps a ``(D,)`` position to an ``(m,)`` summary to store; defaults to
            the first ``min(D, 8)`` coordinates.
        step_size: initial (or, without adaptation, fixed) leapfrog step.
        persistence: momentum persistence ``a`` of :func:`ghmc_step`.
        target_accept: target mean acceptance probability for the adaptation.
        adapt_step_size: tune the step size during warm-up.
        thin: transitions per stored draw (the projection is evaluated only on
            stored draws, which matters when it is costlier than a gradient).

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
    project = project or (lambda x: x[: min(x.shape[0], 8)])
    chains = init_positions.shape[0]
    dtype = init_positions.dtype

    def run(key, init_positions):
        k_init, k_warm, k_samp = jax.random.split(key, 3)
        states = jax.vmap(ghmc_init, (0, 0, None))(
            jax.random.split(k_init, chains), init_positions, logdensity_fn
        )
        step = jax.vmap(ghmc_step, (0, 0, None, None, None))

        # dual averaging of log step size (gamma=0.05, t0=10, kappa=0.75)
        mu = jnp.log(10.0 * jnp.asarray(step_size, dtype))

        def warm(carry, inp):
            states, log_eps, log_eps_bar, h_bar = carry
            t, k = inp
            states, info = step(
                jax.random.split(k, chains), states, logdensity_fn, jnp.exp(log_eps), persistence
            )
            if adapt_step_size:
                alpha = jnp.mean(info.acceptance_prob)
                h_bar = (1 - 1 / (t + 10)) * h_bar + (target_accept - alpha) / (t + 10)
                log_eps = mu - jnp.sqrt(t) / 0.05 * h_bar
                w = t**-0.75
                log_eps_bar = w * log_eps + (1 - w) * log_eps_bar
            return (states, log_eps, log_eps_bar, h_bar), None

        log_eps0 = jnp.log(jnp.asarray(step_size, dtype))
        carry = (states, log_eps0, log_eps0, jnp.zeros((), dtype))
        ts = jnp.arange(1, num_warmup + 1, dtype=dtype)
        carry, _ = jax.lax.scan(warm, carry, (ts, jax.random.split(k_warm, num_warmup)))
        states = carry[0]
        eps = jnp.exp(carry[2]) if (adapt_step_size and num_warmup > 0) else jnp.exp(log_eps0)

        def one(carry, k):
            states, acc, div, nonfinite = carry
            states, info = step(
                jax.random.split(k, chains), states, logdensity_fn, eps, persistence
            )
            acc = acc + info.acceptance_prob
            return (states, acc, div + info.divergent, nonfinite + info.nonfinite), None

        def advance(states, k):
            zero = jnp.zeros((chains,), dtype)
            izero = jnp.zeros((chains,), jnp.int32)
            (states, acc, div, nonfinite), _ = jax.lax.scan(
                one, (states, zero, izero, izero), jax.random.split(k, thin)
            )
            return states, (acc / thin, div, nonfinite)

        proj, mom, stats = _draws(advance, states, init_positions, k_samp, num_samples, project)
        return proj, mom, stats, eps

    (proj, mom, stats, eps), seconds, compile_s = _timed(run, key, init_positions)
    return _result(
        proj,
        mom,
        stats,
        eps,
        seconds,
        compile_s,
        nonfinite=int(np.sum(stats[2])),
        gradients_per_chain=float(num_samples * thin),
        warmup_gradients_per_chain=float(num_warmup),
    )


def sample_blackjax(
    key: jax.Array,
    logdensity_fn: LogDensity,
    init_positions: jax.Array,
    *,
    num_warmup: int,
    num_samples: int,
    project: Projection | None = None,
    algorithm: str = "nuts",
    num_integration_steps: int = 10,
    target_accept: float = 0.8,
) -> SampleResult:
    """Baseline: blackjax NUTS or HMC, many chains with vmap.

    Step size and a diagonal inverse mass matrix come from blackjax's Stan-style
    ``window_adaptation`` run on the first chain; every chain then uses them.

    Args:
        key: a ``jax.random`` key.
        logdensity_fn: log density of a flat ``(D,)`` position.
        init_positions: ``(chains, D)`` starting points.
        num_warmup: adaptation steps (on chain 0).
        num_samples: stored transitions per chain.
        project: as in :func:`sample_ghmc`.
        algorithm: ``"nuts"`` or ``"hmc"``.
        num_integration_steps: leapfrog steps per HMC transition.
        target_accept: target acceptance rate of the adaptation.

    Returns:
        A :class:`SampleResult`. blackjax counts proposals with a non-finite energy as
        divergent, so ``nonfinite`` is always 0 here and they appear in ``divergences``.

    Raises:
        ValueError: unknown algorithm, bad shapes or non-finite starting points.
    """
    import blackjax

    init_positions = _check_init(init_positions, num_warmup, num_samples)
    if algorithm not in ("nuts", "hmc"):
        raise ValueError(f"algorithm must be 'nuts' or 'hmc', got {algorithm!r}")
    project = project or (lambda x: x[: min(x.shape[0], 8)])
    chains = init_positions.shape[0]
    algo = blackjax.nuts if algorithm == "nuts" else blackjax.hmc
    extra = {} if algorithm == "nuts" else {"num_integration_steps": num_integration_steps}

    def run(key, init_positions):
        k_adapt, k_samp = jax.random.split(key)
        adapt = blackjax.window_adaptation(
            algo, logdensity_fn, target_acceptance_rate=target_accept, **extra
        )
        (state0, params), adapt_info = adapt.run(k_adapt, init_positions[0], num_steps=num_warmup)
        warm_grads = jnp.sum(adapt_info.info.num_integration_steps)
        kernel = algo(logdensity_fn, **{**params, **extra})
        states = jax.vmap(kernel.init)(init_positions.at[0].set(state0.position))

        def advance(states, k):
            states, info = jax.vmap(kernel.step)(jax.random.split(k, chains), states)
            return states, (info.acceptance_rate, info.is_divergent, info.num_integration_steps)

        proj, mom, stats = _draws(advance, states, init_positions, k_samp, num_samples, project)
        return proj, mom, stats, params["step_size"], warm_grads

    (proj, mom, stats, eps, warm_grads), seconds, compile_s = _timed(run, key, init_positions)
    return _result(
        proj,
        mom,
        stats,
        eps,
        seconds,
        compile_s,
        nonfinite=0,
        gradients_per_chain=float(np.sum(stats[2])) / chains,
        warmup_gradients_per_chain=float(warm_grads),
    )


def flat_logdensity(log_density: Callable, example_params) -> tuple[LogDensity, Callable, Callable]:
    """Wrap a pytree log density for the flat-vector samplers.

    Args:
        log_density: ``params_pytree -> scalar``.
        example_params: a params pytree with the right structure and dtypes.

    Returns:
        ``(logdensity_flat, ravel, unravel)``.
    """
    from jax.flatten_util import ravel_pytree

    _, unravel = ravel_pytree(example_params)

    def ravel(p):
        return ravel_pytree(p)[0]

    return (lambda v: log_density(unravel(v))), ravel, unravel


__all__ = [
    "GHMCInfo",
    "GHMCState",
    "SampleResult",
    "flat_logdensity",
    "ghmc_init",
    "ghmc_step",
    "sample_blackjax",
    "sample_ghmc",
]
