"""Plain-NumPy LinUCB loops, independent of :mod:`widelab_recsys.bandits`.

:func:`linucb_reference` recomputes the ridge solution from scratch every round (no
rank-one updates, no caching), which makes it a slow but transparent cross-check;
:func:`linucb_numpy_incremental` is the fast NumPy loop (Sherman-Morrison updates) used as
the peer in the benchmark.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linucb_numpy_incremental", "linucb_reference"]


def linucb_reference(features, theta, noise, *, alpha: float = 1.0, ridge: float = 1.0):
    """LinUCB (Li et al. 2010, Alg. 1, one shared parameter) by direct solves, in float64.

    Each round: ``A = λI + Σ x xᵀ``, ``b = Σ r x``, ``θ̂ = A⁻¹b``,
    ``UCB_a = x_a·θ̂ + α √(x_aᵀ A⁻¹ x_a)``, serve ``argmax`` (lowest index on ties), observe
    ``r = x_a·θ* + noise_t``.

    Args:
        features: ``(A, d)`` arm features.
        theta: ``(d,)`` true parameter.
        noise: ``(T,)`` scaled reward noise.
        alpha: UCB width.
        ridge: λ.

    Returns:
        ``(arms (T,), regret (T,))`` NumPy arrays.
    """
    x = np.asarray(features, np.float64)
    mu = x @ np.asarray(theta, np.float64)
    d = x.shape[1]
    a_mat = ridge * np.eye(d)
    b = np.zeros(d)
    arms = np.empty(len(noise), np.int64)
    for t, eps in enumerate(np.asarray(noise, np.float64)):
        theta_hat = np.linalg.solve(a_mat, b)
        var = np.einsum("ad,da->a", x, np.linalg.solve(a_mat, x.T))
        a = int(np.argmax(x @ theta_hat + alpha * np.sqrt(np.maximum(var, 0.0))))
        r = mu[a] + eps
        a_mat += np.outer(x[a], x[a])
        b += r * x[a]
        arms[t] = a
    return arms, mu.max() - mu[arms]


def linucb_numpy_incremental(features, theta, noise, *, alpha: float = 1.0, ridge: float = 1.0):
    """The same decisions with Sherman-Morrison updates and cached per-arm moments.

    Args:
        features: ``(A, d)`` arm features.
        theta: ``(d,)`` true parameter.
        noise: ``(T,)`` scaled reward noise.
        alpha: UCB width.
        ridge: λ.

    Returns:
        ``(arms (T,), regret (T,))``.
    """
    x = np.asarray(features, np.float64)
    mu = x @ np.asarray(theta, np.float64)
    a_inv = np.eye(x.shape[1]) / ridge
    th = np.zeros(x.shape[1])
    mean = np.zeros(x.shape[0])
    var = np.einsum("ad,ad->a", x, x) / ridge
    arms = np.empty(len(noise), np.int64)
    for t, eps in enumerate(np.asarray(noise, np.float64)):
        a = int(np.argmax(mean + alpha * np.sqrt(np.maximum(var, 0.0))))
        z = x[a]
        u = a_inv @ z
        c = 1.0 / (1.0 + z @ u)
        err = mu[a] + eps - z @ th
        zu = x @ u
        a_inv -= c * np.outer(u, u)
        th += c * err * u
        mean += c * err * zu
        var -= c * zu * zu
        arms[t] = a
    return arms, mu.max() - mu[arms]
