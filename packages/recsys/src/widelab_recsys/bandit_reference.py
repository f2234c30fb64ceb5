"""Plain-NumPy LinUCB loops, independent of :mod:`widelab_recsys.bandits`.

:func:`linucb_reference` recomputes the ridge solution from scratch every round (no
rank-one updates, no caching), which makes it a slow but transparent cross-check;
:func:`linucb_numpy_incremental` is the fast NumPy loop (Sherman-Morrison updates) used as
the peer in the benchmark; :func:`two_stage_reference` is the two-stage system (naive or
synchronised) by direct solves, with pools of any sizes, top-``k`` nominations and slates
of ``K`` arms.

Tie rule, everywhere: arms of equal UCB are ordered by arm index, lowest first.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linucb_numpy_incremental", "linucb_reference", "two_stage_reference"]


def _slates(noise):
    """``(noise (T, K), one_arm)``: a 1-D noise serves one arm per round."""
    eps = np.asarray(noise, np.float64)
    return (eps[:, None], True) if eps.ndim == 1 else (eps, False)


def _slate_regret(mu, arms, one_arm):
    """Regret of each round's slate against the best slate of the same size."""
    k = arms.shape[1]
    regret = np.sort(mu)[-k:].sum() - mu[arms].sum(axis=1)
    return (arms[:, 0] if one_arm else arms), regret


def _top(ucb, ids, k):
    """Positions of the ``k`` largest UCBs, best first, equal UCBs by lowest id."""
    return np.lexsort((ids, -ucb))[:k]


def linucb_reference(features, theta, noise, *, alpha: float = 1.0, ridge: float = 1.0):
    """LinUCB (Li et al. 2010, Alg. 1, one shared parameter) by direct solves, in float64.

    Each round: ``A = λI + Σ x xᵀ``, ``b = Σ r x``, ``θ̂ = A⁻¹b``,
    ``UCB_a = x_a·θ̂ + α √(x_aᵀ A⁻¹ x_a)``, serve the ``K`` arms of highest UCB (lowest
    index first on ties), observe ``r = x_a·θ* + noise`` for each.

    Args:
        features: ``(A, d)`` arm features.
        theta: ``(d,)`` true parameter.
        noise: ``(T,)`` scaled reward noise, or ``(T, K)`` for slates of ``K`` arms.
        alpha: UCB width.
        ridge: λ.

    Returns:
        ``(arms, regret (T,))`` NumPy arrays; ``arms`` is ``(T,)`` or ``(T, K)``, the
        regret is against the best ``K`` arms.
    """
    x = np.asarray(features, np.float64)
    mu = x @ np.asarray(theta, np.float64)
    d = x.shape[1]
    a_mat = ridge * np.eye(d)
    b = np.zeros(d)
    eps, one_arm = _slates(noise)
    arms = np.empty(eps.shape, np.int64)
    for t, e in enumerate(eps):
        theta_hat = np.linalg.solve(a_mat, b)
        var = np.einsum("ad,da->a", x, np.linalg.solve(a_mat, x.T))
        ucb = x @ theta_hat + alpha * np.sqrt(np.maximum(var, 0.0))
        arms[t] = _top(ucb, np.arange(len(x)), eps.shape[1])
        for a, noise_s in zip(arms[t], e, strict=True):
            a_mat += np.outer(x[a], x[a])
            b += (mu[a] + noise_s) * x[a]
    return _slate_regret(mu, arms, one_arm)


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
    nominate: int = 1,
):
    """Two-stage LinUCB (Hron et al. 2020, 2021) by direct ridge solves each round, in float64.

    Each round every nominator ``j`` nominates the ``k`` arms of its pool with the highest
    UCB under its features ``z_a = Π_jᵀ x_a``; the ranker serves the ``K`` nominees of
    highest UCB; the ranker and each served arm's nominator (every nominator with
    ``share_feedback``) add the observations; with ``sync`` each nominator, for each of its
    nominees in nomination order, if more uncertain than the ranker about it, adds the
    pseudo-observation of weight ``w = (v_j - v_R)/(v_j v_R)`` and target
    ``y = m_j + (m_R - m_j)(1 + w v_j)/(w v_j)`` (the ranker's means and variances after
    this round's real updates; the nominator's after its earlier pseudo-observations),
    which makes its prediction at that arm equal the ranker's. Ties: lowest arm id first.

    Args:
        features: ``(A, d)`` arm features.
        theta: ``(d,)`` true parameter.
        pools: sequence of 1-D arm-id arrays, one per nominator (any sizes; ``-1``
            entries are ignored, so a padded ``(P, n)`` array works too).
        projections: ``(P, d, d_j)`` nominator feature maps.
        noise: ``(T,)`` scaled reward noise (one arm per round), or ``(T, K)`` for
            slates of ``K`` arms.
        sync: synchronise nominators with the ranker.
        alpha: UCB width.
        ridge: λ.
        share_feedback: every nominator updates on every served arm.
        warm_arms: arms the ranker observes before round 1.
        warm_noise: their noise (zeros if None).
        nominate: ``k``, arms nominated per nominator (all of a smaller pool).

    Returns:
        ``(arms, regret (T,))`` NumPy arrays; ``arms`` is ``(T,)`` or ``(T, K)`` (slate
        order), the regret is against the best slate of ``K`` arms.
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
    eps, one_arm = _slates(noise)
    arms = np.empty(eps.shape, np.int64)
    for t, e in enumerate(eps):
        nominees, owners = [], []
        for j, pool in enumerate(pools):
            m, v = _ridge(a_n[j], b_n[j], z[j][pool])
            top = pool[_top(m + alpha * np.sqrt(np.maximum(v, 0.0)), pool, nominate)]
            nominees.append(top)
            owners += [j] * len(top)
        cand, owners = np.concatenate(nominees), np.asarray(owners)
        m, v = _ridge(a_r, b_r, x[cand])
        pos = _top(m + alpha * np.sqrt(np.maximum(v, 0.0)), cand, eps.shape[1])
        arms[t] = cand[pos]
        for a, owner, noise_s in zip(cand[pos], owners[pos], e, strict=True):
            r = mu[a] + noise_s
            a_r += np.outer(x[a], x[a])
            b_r += r * x[a]
            for j in range(len(pools)):
                if j == owner or share_feedback:
                    a_n[j] += np.outer(z[j][a], z[j][a])
                    b_n[j] += r * z[j][a]
        if sync:
            for j, top in enumerate(nominees):
                m_r, v_r = _ridge(a_r, b_r, x[top])
                for a, m_ra, v_ra in zip(top, m_r, v_r, strict=True):
                    zj = z[j][a]
                    m_j, v_j = (q[0] for q in _ridge(a_n[j], b_n[j], zj[None, :]))
                    if v_j > v_ra:
                        w = (v_j - v_ra) / (v_j * v_ra)
                        y = m_j + (m_ra - m_j) * (1 + w * v_j) / (w * v_j)
                        a_n[j] += w * np.outer(zj, zj)
                        b_n[j] += w * y * zj
    return _slate_regret(mu, arms, one_arm)
