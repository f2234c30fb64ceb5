"""blackjax baselines (NUTS, HMC) run through the same multi-chain driver summary."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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
    data=None,
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
        data: as in :func:`sample_ghmc` (arrays passed to ``logdensity_fn`` and
            ``project``; the compiled run is reused across calls).

    Returns:
        A :class:`SampleResult` (``step_size`` is the mean over chains;
        ``warmup_gradients_per_chain`` the mean over adapted chains). blackjax counts
        proposals with a non-finite energy as divergent, so ``nonfinite`` is always 0
        here and they appear in ``divergences``.

    Raises:
        ValueError: unknown algorithm, bad shapes or non-finite starting points.
    """
    init_positions = _check_init(init_positions, num_warmup, num_samples)
    if algorithm not in ("nuts", "hmc"):
        raise ValueError(f"algorithm must be 'nuts' or 'hmc', got {algorithm!r}")
    project = _projection(project, project_key)
    chains = init_positions.shape[0]
    static = (
        logdensity_fn,
        project,
        bool(project_key),
        data is not None,
        algorithm,
        int(num_integration_steps),
        float(target_accept),
        bool(per_chain_adaptation),
        int(num_warmup),
        int(num_samples),
    )
    (proj, mom, stats, eps, warm_grads), seconds, compile_s = _timed(
        _blackjax_program, static, key, init_positions, data
    )
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


def _blackjax_program(static, key, init_positions, data):
    """The whole blackjax run as one traced program; ``static`` as built by
    :func:`sample_blackjax`."""
    import blackjax

    logdensity_fn, project, project_key, has_data, algorithm = static[:5]
    num_integration_steps, target_accept, per_chain_adaptation, num_warmup, num_samples = static[5:]
    logdensity_fn = _bind(logdensity_fn, data, has_data)
    project = _bind(project, data, has_data)
    chains = init_positions.shape[0]
    algo = blackjax.nuts if algorithm == "nuts" else blackjax.hmc
    extra = {} if algorithm == "nuts" else {"num_integration_steps": num_integration_steps}

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
