"""Warm-up adaptation: dual averaging of the step size and Stan-like warm-up windows."""

from __future__ import annotations

import jax.numpy as jnp


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
