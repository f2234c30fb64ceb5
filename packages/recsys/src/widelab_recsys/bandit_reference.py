"""Plain-NumPy LinUCB loops, independent of :mod:`widelab_recsys.bandits`.

:func:`linucb_reference` recomputes the ridge solution from scratch every round (no
rank-one updates, no caching), which makes it a slow but transparent cross-check;
:func:`linucb_numpy_incremental` is the fast NumPy loop (Sherman-Morrison updates) used as
the peer in the benchmark; :func:`two_stage_reference` is the two-stage system (naive or
synchronised) by direct solves, with pools of any sizes.

Tie rule, everywhere: among arms of equal UCB the lowest arm index wins.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linucb_numpy_incremental", "linucb_reference", "two_stage_reference"]


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


def _ridge(a_mat, b, z):
    """Predictive means and variances (units of σ²) of rows ``z`` under ``A``, ``b``."""
    theta = np.linalg.solve(a_mat, b)
    var = np.einsum("ad,da->a", z, np.linalg.solve(a_mat, z.T))
    return z @ theta, var


def _pick(ucb, ids):
    """Index of the largest UCB, ties to the lowest arm id."""
    best = ucb.max()
    return int(np.flatnonzero(ucb == best)[np.argmin(ids[ucb == best])])


def two_stage_reference(
    features,
    theta,
    pools,
    projections,
    noise,
    *,
    sync: bool,
    alpha: float = 1.0,
    ridge: float = 1.0,
    share_feedback: bool = False,
    warm_arms=(),
    warm_noise=None,
):
    """Two-stage LinUCB (Hron et al. 2020) by direct ridge solves each round, in float64.

    Each round every nominator ``j`` nominates the arm of its pool with the highest UCB
    under its features ``z_a = Π_jᵀ x_a``; the ranker serves the nominee of highest UCB;
    the ranker and the serving nominator (every nominator with ``share_feedback``) add
    the observation; with ``sync`` each nominator more uncertain than the ranker about
    its nominee adds the pseudo-observation of weight ``w = (v_j - v_R)/(v_j v_R)`` and
    target ``y = m_j + (m_R - m_j)(1 + w v_j)/(w v_j)`` (means and variances after this
    round's real updates), which makes its prediction at that arm equal the ranker's.

    Args:
        features: ``(A, d)`` arm features.
        theta: ``(d,)`` true parameter.
        pools: sequence of 1-D arm-id arrays, one per nominator (any sizes; ``-1``
            entries are ignored, so a padded ``(P, n)`` array works too).
        projections: ``(P, d, d_j)`` nominator feature maps.
        noise: ``(T,)`` scaled reward noise.
        sync: synchronise nominators with the ranker.
        alpha: UCB width.
        ridge: λ.
        share_feedback: every nominator updates on every served arm.
        warm_arms: arms the ranker observes before round 1.
        warm_noise: their noise (zeros if None).

    Returns:
        ``(arms (T,), regret (T,))`` NumPy arrays.
    """
    x = np.asarray(features, np.float64)
    mu = x @ np.asarray(theta, np.float64)
    proj = np.asarray(projections, np.float64)
    pools = [np.asarray(p, np.int64)[np.asarray(p) >= 0] for p in pools]
    z = [x @ proj[j] for j in range(len(pools))]  # (A, d_j) per nominator
    a_r, b_r = ridge * np.eye(x.shape[1]), np.zeros(x.shape[1])
    warm_arms = np.asarray(warm_arms, np.int64)
    wn = np.zeros(len(warm_arms)) if warm_noise is None else np.asarray(warm_noise, np.float64)
    for a, e in zip(warm_arms, wn, strict=True):
        a_r += np.outer(x[a], x[a])
        b_r += (mu[a] + e) * x[a]
    a_n = [ridge * np.eye(zj.shape[1]) for zj in z]
    b_n = [np.zeros(zj.shape[1]) for zj in z]
    arms = np.empty(len(noise), np.int64)
    for t, eps in enumerate(np.asarray(noise, np.float64)):
        nominees = np.empty(len(pools), np.int64)
        for j, pool in enumerate(pools):
            m, v = _ridge(a_n[j], b_n[j], z[j][pool])
            nominees[j] = pool[_pick(m + alpha * np.sqrt(np.maximum(v, 0.0)), pool)]
        m, v = _ridge(a_r, b_r, x[nominees])
        j_serve = _pick(m + alpha * np.sqrt(np.maximum(v, 0.0)), nominees)
        a = nominees[j_serve]
        r = mu[a] + eps
        a_r += np.outer(x[a], x[a])
        b_r += r * x[a]
        for j in range(len(pools)):
            if j == j_serve or share_feedback:
                a_n[j] += np.outer(z[j][a], z[j][a])
                b_n[j] += r * z[j][a]
        if sync:
            m_r, v_r = _ridge(a_r, b_r, x[nominees])
            for j in range(len(pools)):
                zj = z[j][nominees[j]][None, :]
                m_j, v_j = (q[0] for q in _ridge(a_n[j], b_n[j], zj))
                if v_j > v_r[j]:
                    w = (v_j - v_r[j]) / (v_j * v_r[j])
                    y = m_j + (m_r[j] - m_j) * (1 + w * v_j) / (w * v_j)
                    a_n[j] += w * np.outer(zj[0], zj[0])
                    b_n[j] += w * y * zj[0]
        arms[t] = a
    return arms, mu.max() - mu[arms]
