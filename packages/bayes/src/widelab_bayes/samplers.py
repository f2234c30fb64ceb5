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
        scale: ``(chains, D)`` per-coordinate scales :func:`sample_ghmc` used after
            warm-up (``None`` for the blackjax baselines).
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
    scale: np.ndarray | None = None


def _welford(carry, x):
    n, mean, m2 = carry
    n = n + 1
    delta = x - mean
    mean = mean + delta / n
    m2 = m2 + delta * (x - mean)
    return n, mean, m2


def _moments0(chains: int, dim: int, dtype) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Empty per-chain Welford moments ``(count, mean, m2)``."""
    zeros = jnp.zeros((chains, dim), dtype)
    return jnp.zeros((chains,), dtype), zeros, zeros


def _draws(advance, states, init_positions, key, num_samples, project, project_key=False):
    """Scan ``num_samples`` stored draws; ``advance(states, k) -> (states, stats)``.

    Every stored position feeds the per-chain Welford moments and ``project`` (called
    as ``project(position, key)`` with a fresh key per chain and draw when
    ``project_key``). Returns ``(projections, (n, mean, m2), stats)`` stacked over draws.
    """
    chains = init_positions.shape[0]

    def body(carry, k):
        states, mom = carry
        k_adv, k_proj = jax.random.split(k)
        states, stats = advance(states, k_adv)
        mom = jax.vmap(_welford)(mom, states.position)
        if project_key:
            proj = jax.vmap(project)(states.position, jax.random.split(k_proj, chains))
        else:
            proj = jax.vmap(project)(states.position)
        return (states, mom), (proj, stats)

    mom0 = _moments0(*init_positions.shape, init_positions.dtype)
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


def _projection(project, project_key):
    """``project``, or the first ``min(D, 8)`` coordinates when it is ``None``."""
    if project is None and project_key:
        raise ValueError("project_key=True needs a project(position, key) function")
    return project or (lambda x: x[: min(x.shape[0], 8)])


def _check_init(init_positions, num_warmup, num_samples):
    init_positions = jnp.asarray(init_positions)
    if init_positions.ndim != 2:
        raise ValueError(
            f"init_positions must have shape (chains, D), got {tuple(init_positions.shape)}"
        )
    if init_positions.shape[0] < 1 or init_positions.shape[1] < 1:
        raise ValueError(
            "init_positions must hold at least one chain of at least one coordinate, got "
            f"shape {tuple(init_positions.shape)}"
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


def _dual_averaging(log_eps0, target_accept):
    """Dual averaging of the log step size (Hoffman & Gelman 2014, Alg. 5; gamma=0.05,
    t0=10, kappa=0.75): ``(init, update)`` on a carry ``(log_eps, log_eps_bar, h_bar)``."""
    mu = jnp.log(10.0) + log_eps0

    def update(carry, t, alpha):
        log_eps, log_eps_bar, h_bar = carry
        h_bar = (1 - 1 / (t + 10)) * h_bar + (target_accept - alpha) / (t + 10)
        log_eps = mu - jnp.sqrt(t) / 0.05 * h_bar
        w = t**-0.75
        return log_eps, w * log_eps + (1 - w) * log_eps_bar, h_bar

    return (log_eps0, log_eps0, jnp.zeros_like(log_eps0)), update


def _warmup_stages(num_warmup: int, adapt_scale: bool) -> list[tuple[int, bool]]:
    """``(length, estimate_scale)`` stages: Stan-like, a 15% initial buffer, doubling
    windows that each end with a new diagonal scale, and a final 10% buffer where only
    the step size is tuned (all in one stage without ``adapt_scale``)."""
    if not adapt_scale:
        return [(num_warmup, False)]
    first, last = (15 * num_warmup) // 100, num_warmup // 10
    middle = num_warmup - first - last
    windows, w = [], max(middle // 15, 5)
    while sum(windows) + w + 2 * w <= middle:
        windows.append(w)
        w *= 2
    windows.append(middle - sum(windows))
    return [(first, False)] + [(n, True) for n in windows] + [(last, False)]


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
    chains, dim = init_positions.shape
    dtype = init_positions.dtype
    stages = _warmup_stages(num_warmup, adapt_scale)

    def run(key, init_positions):
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
            (states, da, mom), _ = jax.lax.scan(
                body, (states, da0, mom0), (ts, jax.random.split(k, n))
            )
            log_eps = da[1] if (adapt_step_size and n > 0) else log_eps0
            return states, log_eps, mom

        log_eps = jnp.log(jnp.asarray(step_size, dtype))
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

    (proj, mom, stats, eps, scale), seconds, compile_s = _timed(run, key, init_positions)
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
    per_chain_adaptation: bool = True,
    project_key: bool = False,
) -> SampleResult:
    """Baseline: blackjax NUTS or HMC, many chains with vmap.

    Step size and a diagonal inverse mass matrix come from blackjax's Stan-style
    ``window_adaptation``, run on every chain separately as Stan does (or, with
    ``per_chain_adaptation=False``, on the first chain only and shared by all).

    Args:
        key: a ``jax.random`` key.
        logdensity_fn: log density of a flat ``(D,)`` position.
        init_positions: ``(chains, D)`` starting points.
        num_warmup: adaptation steps (per chain).
        num_samples: stored transitions per chain.
        project: as in :func:`sample_ghmc`.
        algorithm: ``"nuts"`` or ``"hmc"``.
        num_integration_steps: leapfrog steps per HMC transition.
        target_accept: target acceptance rate of the adaptation.
        per_chain_adaptation: adapt each chain on its own (default) rather than
            chain 0 for all.
        project_key: as in :func:`sample_ghmc`.

    Returns:
        A :class:`SampleResult` (``step_size`` is the mean over chains;
        ``warmup_gradients_per_chain`` the mean over adapted chains). blackjax counts
        proposals with a non-finite energy as divergent, so ``nonfinite`` is always 0
        here and they appear in ``divergences``.

    Raises:
        ValueError: unknown algorithm, bad shapes or non-finite starting points.
    """
    import blackjax

    init_positions = _check_init(init_positions, num_warmup, num_samples)
    if algorithm not in ("nuts", "hmc"):
        raise ValueError(f"algorithm must be 'nuts' or 'hmc', got {algorithm!r}")
    project = _projection(project, project_key)
    chains = init_positions.shape[0]
    algo = blackjax.nuts if algorithm == "nuts" else blackjax.hmc
    extra = {} if algorithm == "nuts" else {"num_integration_steps": num_integration_steps}

    def run(key, init_positions):
        k_adapt, k_samp = jax.random.split(key)
        adapt = blackjax.window_adaptation(
            algo, logdensity_fn, target_acceptance_rate=target_accept, **extra
        )

        def adapt_one(k, x0):
            (state, params), info = adapt.run(k, x0, num_steps=num_warmup)
            return state, params, jnp.sum(info.info.num_integration_steps)

        if per_chain_adaptation:
            states, params, warm = jax.vmap(adapt_one)(
                jax.random.split(k_adapt, chains), init_positions
            )
            warm_grads = jnp.mean(warm)
        else:
            state0, params, warm_grads = adapt_one(k_adapt, init_positions[0])
            params = jax.tree.map(lambda a: jnp.broadcast_to(a, (chains,) + jnp.shape(a)), params)
            states = jax.vmap(lambda x, p: algo(logdensity_fn, **{**p, **extra}).init(x))(
                init_positions.at[0].set(state0.position), params
            )

        def step_one(k, state, p):
            return algo(logdensity_fn, **{**p, **extra}).step(k, state)

        def advance(states, k):
            states, info = jax.vmap(step_one)(jax.random.split(k, chains), states, params)
            return states, (info.acceptance_rate, info.is_divergent, info.num_integration_steps)

        proj, mom, stats = _draws(
            advance, states, init_positions, k_samp, num_samples, project, project_key
        )
        return proj, mom, stats, jnp.mean(params["step_size"]), warm_grads

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
