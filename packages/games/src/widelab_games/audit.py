"""Pre-deployment audit metrics of strategic content (Hron et al. 2023, Section 3).

Given a game and an equilibrium profile, the audit asks what content the recommender
incentivises: how well it matches users (normalised rating, i.e. cosine), how
concentrated it is (does exploration ``tau`` make producers collapse onto one broadly
appealing direction or specialise), whether it targets some user groups more than others
(user-centric: what each group gets; producer-centric: where producers' exposure comes
from), and which existing creators it lands next to (creator-group neighbourhoods).
"""

from __future__ import annotations

import numpy as np

from .game import ExposureGame, check_profile, exposure_numpy


def normalized_ratings(users, profile) -> np.ndarray:
    """Cosine ``<c, s_i> / (||c|| ||s_i||)`` of every user with every producer.

    Hron et al. (2023), Section 3: ratings are normalised by the user's norm so users
    with large embeddings do not dominate averages.

    Args:
        users: ``(m, d)`` user embeddings (no zero rows).
        profile: ``(n, d)`` content vectors.

    Returns:
        ``(m, n)`` cosines in ``[-1, 1]``.
    """
    u = np.asarray(users, np.float64)
    s = np.asarray(profile, np.float64)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    s = s / np.linalg.norm(s, axis=1, keepdims=True)
    return u @ s.T


def _distinct(profile: np.ndarray, cos_tol: float) -> int:
    """Greedy count of clusters of directions within ``arccos(1 - cos_tol)`` of each other."""
    left = list(range(len(profile)))
    count = 0
    while left:
        ref = profile[left[0]]
        left = [j for j in left if profile[j] @ ref < 1.0 - cos_tol]
        count += 1
    return count


def concentration(game: ExposureGame, profile, *, cos_tol: float = 1e-3) -> dict:
    """Concentration and diversity of strategic content.

    Args:
        game: the game (its demand gives the mean direction and exposure shares).
        profile: ``(n, d)`` content vectors.
        cos_tol: directions with cosine above ``1 - cos_tol`` count as the same content.

    Returns:
        ``mean_pairwise_cos`` (1 = all identical), ``n_distinct`` (clusters of content),
        ``cos_to_mean`` (average cosine with the demand's mean direction) and
        ``exposure_hhi`` (Herfindahl index of the producers' utilities; ``1/n`` = even).
    """
    s = np.asarray(check_profile(profile, game.n_producers, game.dim), np.float64)
    n = s.shape[0]
    gram = s @ s.T
    pair = (gram.sum() - n) / (n * (n - 1)) if n > 1 else 1.0
    mu = np.asarray(game.weights, np.float64) @ np.asarray(game.users, np.float64)
    cmean = float(np.mean(s @ mu) / np.linalg.norm(mu)) if np.linalg.norm(mu) > 0 else np.nan
    util = np.asarray(game.weights, np.float64) @ _p(game, s)
    return {
        "mean_pairwise_cos": float(pair),
        "n_distinct": _distinct(s, cos_tol),
        "cos_to_mean": cmean,
        "exposure_hhi": float(np.sum(util**2)),
    }


def _groups(labels, m: int, name: str) -> np.ndarray:
    g = np.asarray(labels)
    if g.shape != (m,):
        raise ValueError(f"{name} must have shape ({m},); got {g.shape}")
    if not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels (negative = unknown); got {g.dtype}")
    if not (g >= 0).any():
        raise ValueError(f"{name} has no known (non-negative) label")
    return g


def _known(g: np.ndarray) -> np.ndarray:
    return np.unique(g[g >= 0])


def user_centric(game: ExposureGame, profile, user_groups) -> dict:
    """What each user group gets from strategic content (user-centric targeting).

    For user ``c`` the exposure-weighted normalised rating is
    ``sum_i p_i(c, s) cos(c, s_i)`` and the best available one is ``max_i cos(c, s_i)``;
    both are averaged (with the demand weights) within each group.

    Args:
        game: the game.
        profile: ``(n, d)`` content.
        user_groups: ``(m,)`` integer group label of every demand support point
            (negative = unknown, left out).

    Returns:
        ``{"rating[g]": ..., "best[g]": ..., "rating_gap": max - min over groups}``.

    Raises:
        ValueError: labels of the wrong shape.
    """
    g = _groups(user_groups, game.n_users, "user_groups")
    s = np.asarray(check_profile(profile, game.n_producers, game.dim), np.float64)
    cos = normalized_ratings(game.users, s)
    p = _p(game, s)
    w = np.asarray(game.weights, np.float64)
    got = (p * cos).sum(axis=1)
    best = cos.max(axis=1)
    out = {}
    vals = []
    for lab in _known(g):
        sel = g == lab
        ww = w[sel] / w[sel].sum()
        out[f"rating[{lab}]"] = float(ww @ got[sel])
        out[f"best[{lab}]"] = float(ww @ best[sel])
        vals.append(out[f"rating[{lab}]"])
    out["rating_gap"] = float(max(vals) - min(vals))
    return out


def producer_centric(game: ExposureGame, profile, user_groups) -> dict:
    """Where producers' exposure comes from (producer-centric targeting).

    For group ``g`` with demand share ``pi_g``, the share of producer ``i``'s exposure
    coming from ``g`` is ``E[p_i 1{c in g}] / u_i``. Averaged over producers and divided
    by ``pi_g`` it is 1 when content is group-neutral and above 1 when ``g`` is targeted.
    A producer "targets" the group whose mean direction its content is closest to.

    Args:
        game: the game.
        profile: ``(n, d)`` content.
        user_groups: ``(m,)`` group labels.

    Returns:
        ``{"exposure_ratio[g]": ..., "targeting[g]": fraction of producers targeting g}``.
    """
    g = _groups(user_groups, game.n_users, "user_groups")
    s = np.asarray(check_profile(profile, game.n_producers, game.dim), np.float64)
    p = _p(game, s)
    w = np.asarray(game.weights, np.float64)
    u = np.asarray(game.users, np.float64)
    util = w @ p
    labs = _known(g)
    means = np.stack([w[g == lab] @ u[g == lab] for lab in labs])
    means = means / np.linalg.norm(means, axis=1, keepdims=True)
    closest = np.argmax(s @ means.T, axis=1)
    out = {}
    for k, lab in enumerate(labs):
        sel = g == lab
        share = (w[sel] @ p[sel]) / np.maximum(util, 1e-300)
        out[f"exposure_ratio[{lab}]"] = float(share.mean() / w[sel].sum())
        out[f"targeting[{lab}]"] = float(np.mean(closest == k))
    return out


def creator_neighbourhood(profile, items, item_groups, *, k: int = 10) -> dict:
    """Which existing creators strategic content lands next to.

    For every producer, the ``k`` catalogue items with the highest cosine; the fraction of
    those neighbours in each item (creator) group, divided by the group's share of the
    catalogue (1 = neutral), and the mean cosine to the nearest item (how close
    incentivised content is to what exists).

    Args:
        profile: ``(n, d)`` content.
        items: ``(K, d)`` catalogue item embeddings (zero rows are ignored).
        item_groups: ``(K,)`` group labels of the items.
        k: neighbourhood size.

    Returns:
        ``{"neighbour_ratio[g]": ..., "nearest_item_cos": ...}``.

    Raises:
        ValueError: shapes that do not match or ``k < 1``.
    """
    it = np.asarray(items, np.float64)
    lab = _groups(item_groups, it.shape[0], "item_groups")
    keep = np.linalg.norm(it, axis=1) > 0
    it, lab = it[keep], lab[keep]
    if k < 1 or it.shape[0] == 0:
        raise ValueError(f"need k >= 1 and a non-empty catalogue; got k={k}, {len(it)} items")
    k = min(k, it.shape[0])
    cos = normalized_ratings(np.asarray(profile, np.float64), it)  # (n, K)
    nn = np.argsort(-cos, axis=1)[:, :k]
    out = {}
    for g in _known(lab):
        base = np.mean(lab == g)
        out[f"neighbour_ratio[{g}]"] = float(np.mean(lab[nn] == g) / base)
    out["nearest_item_cos"] = float(cos.max(axis=1).mean())
    return out


def catalogue_rating(game: ExposureGame, items) -> float:
    """Baseline: the exposure-weighted normalised rating of the existing catalogue (items
    as producers, same temperature), averaged over the demand."""
    it = np.asarray(items, np.float64)
    it = it[np.linalg.norm(it, axis=1) > 0]
    s = it / np.linalg.norm(it, axis=1, keepdims=True)
    cos = normalized_ratings(game.users, s)
    p = _p(game, s)
    return float(np.asarray(game.weights, np.float64) @ (p * cos).sum(axis=1))


def audit_profile(
    game: ExposureGame,
    profile,
    *,
    user_groups=None,
    items=None,
    item_groups=None,
    k: int = 10,
) -> dict:
    """All audit metrics of one profile, as a flat dictionary.

    Hron et al. (2023), Section 3 (normalised rating, diversity vs exploration,
    gender-group targeting from the user and producer side, creator neighbourhoods).

    Args:
        game: the game.
        profile: ``(n, d)`` content (typically a local Nash equilibrium).
        user_groups: optional ``(m,)`` user group labels.
        items: optional ``(K, d)`` catalogue item embeddings.
        item_groups: optional ``(K,)`` item group labels (needs ``items``).
        k: neighbourhood size.

    Returns:
        Metric name -> value.
    """
    s = np.asarray(check_profile(profile, game.n_producers, game.dim), np.float64)
    out = {"rating": float(np.asarray(game.weights) @ _rating(game, s))}
    out.update(concentration(game, s))
    if user_groups is not None:
        out.update(user_centric(game, s, user_groups))
        out.update(producer_centric(game, s, user_groups))
    if items is not None:
        out["catalogue_rating"] = catalogue_rating(game, items)
        if item_groups is not None:
            out.update(creator_neighbourhood(s, items, item_groups, k=k))
    return out


def _rating(game: ExposureGame, s: np.ndarray) -> np.ndarray:
    p = _p(game, s)
    return (p * normalized_ratings(game.users, s)).sum(axis=1)


def _p(game: ExposureGame, s: np.ndarray) -> np.ndarray:
    return exposure_numpy(game.users, s, float(game.tau))
