"""Seeded synthetic interaction data shaped like MovieLens and Last.fm.

The generative model (all draws from one ``numpy.random.Generator(PCG64(seed))``):

1. Tastes: ``k`` unit-norm cluster centres ``c_1..c_k`` in ``R^dim``; every user and
   item draws a cluster uniformly and sits at its centre plus ``N(0, 0.5^2 / dim)``
   noise per coordinate. A binary attribute ``gender`` is ``"F"`` with probability
   0.29 and ``"M"`` otherwise (MovieLens-100K has 273 of 943 users female, 29 %);
   ``"F"`` users are shifted by ``attribute_effect`` along a random unit direction.
2. Popularity: item ``j`` gets weight ``p_j = rank_j^(-a)`` for a random permutation of
   ranks (a Zipf law with exponent ``a = popularity_exponent``).
3. Activity: user ``u`` interacts with ``m_u`` items, ``m_u`` proportional to a lognormal
   draw ``exp(N(0, activity_sigma^2))``, at least 1 and at most half the items (all
   of them when the density asks for more than half), rescaled
   (water-filling) so that ``sum_u m_u`` is exactly the requested number of
   interactions.
4. Choice: user ``u`` picks ``m_u`` distinct items with Plackett-Luce (sampling without
   replacement) weights ``p_j exp(taste_strength <x_u, y_j>)``, drawn by the Gumbel
   top-k trick (W. Kool, H. van Hoof, M. Welling, ICML 2019, eq. 4).
5. Values: MovieLens ratings 1-5 come from ranking a score (affinity, user bias, item
   quality that grows with popularity, noise) and cutting it at the quantiles of the
   MovieLens-100K rating histogram (6110, 11370, 27145, 34174, 21201 of 100,000);
   Last.fm play counts are lognormal, larger for higher affinity.

The planted labels are returned as attributes: ``user_attributes["cluster"]``,
``item_attributes["cluster"]`` and ``item_attributes["popularity"]`` (``p_j``).
"""

from __future__ import annotations

import hashlib

import numpy as np

from ._base import InteractionData, csr_from_entries
from .movielens import GENRES_100K

__all__ = ["synthetic_lastfm", "synthetic_movielens"]

#: Rating histogram of MovieLens-100K (ratings 1 to 5).
ML100K_RATING_COUNTS = (6110, 11370, 27145, 34174, 21201)
#: Density of MovieLens-100K: 100,000 ratings of 943 users on 1682 movies.
ML100K_DENSITY = 100_000 / (943 * 1682)
#: Share of the minority value of the binary user attribute (female users in ML-100K).
MINORITY_SHARE = 0.29


def _check(n_users, n_items, n_interactions, density, n_clusters, default_total, name):
    for value, what in [(n_users, "n_users"), (n_items, "n_items"), (n_clusters, "n_clusters")]:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}: {what} must be a positive integer, got {value!r}")
    if n_interactions is not None and density is not None:
        raise ValueError(f"{name}: give n_interactions or density, not both")
    if density is not None:
        if not 0 < density <= 1:
            raise ValueError(f"{name}: density must be in (0, 1], got {density!r}")
        n_interactions = int(round(density * n_users * n_items))
    if n_interactions is None:
        n_interactions = default_total
    if not n_users <= n_interactions <= n_users * n_items:
        raise ValueError(
            f"{name}: n_interactions={n_interactions} must lie between n_users={n_users} "
            f"(one each) and n_users * n_items={n_users * n_items}"
        )
    return int(n_interactions)


def _activity(rng, n_users: int, n_items: int, total: int, sigma: float) -> np.ndarray:
    """Per-user counts proportional to lognormal weights, clipped to [1, cap], sum total.

    The cap is half the catalogue (MovieLens' most active users rate about 40-60 % of
    it) unless the requested density needs more.
    """
    w = rng.lognormal(0.0, sigma, n_users)
    cap = n_items if 2 * total > n_users * n_items else -(-n_items // 2)
    filled = lambda s: np.clip(s * w, 1, cap).sum()
    lo, hi = 0.0, cap / w.min()
    for _ in range(200):  # bisection on the scale: filled() is non-decreasing
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if filled(mid) <= total else (lo, mid)
    exact = np.clip(lo * w, 1, cap)
    counts = np.floor(exact).astype(np.int64)
    frac = exact - counts
    remainder = total - int(counts.sum())
    while remainder > 0:  # hand out the rest by largest fractional part
        open_ = np.flatnonzero(counts < cap)
        pick = open_[np.argsort(-frac[open_], kind="stable")[:remainder]]
        counts[pick] += 1
        frac[pick] = -1.0
        remainder -= len(pick)
    return counts


def _plant(rng, n_users, n_items, n_clusters, dim, attribute_effect, popularity_exponent):
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    user_cluster = rng.integers(n_clusters, size=n_users)
    item_cluster = rng.integers(n_clusters, size=n_items)
    users = centres[user_cluster] + rng.normal(scale=0.5 / np.sqrt(dim), size=(n_users, dim))
    items = centres[item_cluster] + rng.normal(scale=0.5 / np.sqrt(dim), size=(n_items, dim))
    minority = rng.random(n_users) < MINORITY_SHARE
    direction = rng.normal(size=dim)
    users += attribute_effect * minority[:, None] * (direction / np.linalg.norm(direction))
    ranks = rng.permutation(n_items) + 1.0
    popularity = ranks ** (-popularity_exponent)
    return users, items, user_cluster, item_cluster, minority, popularity / popularity.sum()


def _choose(rng, users, items, log_pop, counts, taste_strength):
    """Gumbel top-k: each user's ``counts[u]`` distinct items; returns rows, cols, affinity."""
    n_users, n_items = len(users), len(items)
    chunk = max(1, 2_000_000 // n_items)
    rows, cols, affinity = [], [], []
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        aff = users[start:stop] @ items.T
        keys = log_pop[None, :] + taste_strength * aff + rng.gumbel(size=aff.shape)
        c = counts[start:stop]
        kmax = int(c.max())
        top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax] if kmax < n_items else None
        if top is None:
            top = np.broadcast_to(np.arange(n_items), keys.shape)
        top_keys = np.take_along_axis(keys, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_keys, axis=1), axis=1)
        r, pos = np.nonzero(np.arange(kmax)[None, :] < c[:, None])
        rows.append(r + start)
        cols.append(top[r, pos])
        affinity.append(aff[r, top[r, pos]])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(affinity)


def _standardise(x):
    return (x - x.mean()) / max(x.std(), 1e-12)


def _generate(
    name,
    default_total,
    n_users,
    n_items,
    n_interactions,
    density,
    n_clusters,
    dim,
    popularity_exponent,
    activity_sigma,
    taste_strength,
    attribute_effect,
    seed,
):
    """Check the arguments, then plant tastes and draw the interactions (steps 1-4)."""
    total = _check(n_users, n_items, n_interactions, density, n_clusters, default_total, name)
    rng = np.random.default_rng(seed)
    users, items, ucl, icl, minority, pop = _plant(
        rng, n_users, n_items, n_clusters, dim, attribute_effect, popularity_exponent
    )
    counts = _activity(rng, n_users, n_items, total, activity_sigma)
    rows, cols, aff = _choose(rng, users, items, np.log(pop), counts, taste_strength)
    return rng, rows, cols, aff, ucl, icl, minority, pop


def synthetic_movielens(
    n_users: int = 943,
    n_items: int = 1682,
    *,
    n_interactions: int | None = None,
    density: float | None = None,
    n_clusters: int = 8,
    dim: int = 16,
    popularity_exponent: float = 1.0,
    activity_sigma: float = 1.0,
    taste_strength: float = 3.0,
    attribute_effect: float = 0.5,
    seed: int = 0,
) -> InteractionData:
    """MovieLens-like ratings from the planted model of this module's docstring.

    Defaults give the shape of MovieLens-100K (943 x 1682, density 6.3 %, 100,000
    ratings).

    Args:
        n_users: number of users (rows); raw ids ``1..n_users``.
        n_items: number of movies (columns); raw ids ``1..n_items``.
        n_interactions: exact number of ratings; default ``round(d n_users n_items)``
            with ``d = 100000 / (943 * 1682)``, the density of MovieLens-100K.
        density: alternatively, the share of the matrix that is rated.
        n_clusters: number of taste clusters ``k``.
        dim: dimension of the taste space.
        popularity_exponent: Zipf exponent ``a`` of item popularity (0: uniform).
        activity_sigma: log-scale spread of user activity.
        taste_strength: how strongly taste affinity drives choice (0: popularity only).
        attribute_effect: taste shift of the minority attribute value.
        seed: seed of the random generator; equal seeds give equal data.

    Returns:
        :class:`InteractionData`: ratings 1-5 (float32); user attributes ``gender``
        ("M"/"F") and ``cluster``; item attributes ``title``, ``genres`` (bool
        ``(n_items, 19)``, the cluster's genre plus others at 5 %; names in
        ``meta["genre_names"]``), ``cluster`` and ``popularity``.

    Raises:
        ValueError: non-positive sizes, both or an impossible ``n_interactions`` /
            ``density``.
    """
    rng, rows, cols, aff, ucl, icl, minority, pop = _generate(
        "synthetic_movielens",
        max(n_users, int(round(ML100K_DENSITY * n_users * n_items))),
        n_users,
        n_items,
        n_interactions,
        density,
        n_clusters,
        dim,
        popularity_exponent,
        activity_sigma,
        taste_strength,
        attribute_effect,
        seed,
    )
    score = (
        _standardise(aff)
        + 0.5 * rng.normal(size=n_users)[rows]
        + 0.3 * _standardise(np.log(pop))[cols]
        + 0.7 * rng.normal(size=len(rows))
    )
    cuts = np.cumsum(ML100K_RATING_COUNTS)[:-1] / sum(ML100K_RATING_COUNTS)
    rank = np.empty(len(score), np.int64)
    rank[np.argsort(score, kind="stable")] = np.arange(len(score))
    ratings = 1.0 + np.searchsorted(cuts * len(score), rank, side="right")
    matrix = csr_from_entries(rows, cols, ratings, (n_users, n_items), np.float32)

    genres = rng.random((n_items, len(GENRES_100K))) < 0.05
    genres[np.arange(n_items), 1 + icl % (len(GENRES_100K) - 1)] = True
    width = len(str(n_items))
    return InteractionData(
        matrix,
        np.arange(1, n_users + 1),
        np.arange(1, n_items + 1),
        {"gender": np.where(minority, "F", "M"), "cluster": ucl},
        {
            "title": np.array([f"Synthetic movie {j:0{width}d}" for j in range(1, n_items + 1)]),
            "genres": genres,
            "cluster": icl,
            "popularity": pop,
        },
        None,
        {
            "source": f"synthetic MovieLens-like (seed={seed})",
            "genre_names": list(GENRES_100K),
            "seed": seed,
            "n_clusters": n_clusters,
        },
    )


def synthetic_lastfm(
    n_users: int = 2000,
    n_items: int = 5000,
    *,
    n_interactions: int | None = None,
    density: float | None = None,
    n_clusters: int = 8,
    dim: int = 16,
    popularity_exponent: float = 1.0,
    activity_sigma: float = 0.4,
    taste_strength: float = 3.0,
    attribute_effect: float = 0.5,
    seed: int = 0,
) -> InteractionData:
    """Last.fm-like play counts from the planted model of this module's docstring.

    Last.fm-360K lists about 49 top artists per user; the default here is 48 per user.
    Play counts are ``max(1, round(exp(4.3 + 0.5 z + l_u + 0.8 e)))`` with ``z`` the
    standardised affinity, ``l_u ~ N(0, 0.6^2)`` a user level and ``e ~ N(0, 1)``.

    Args:
        n_users: number of users; raw ids are 40-character hex strings like the
            dataset's user SHA-1s (rows in their sorted order).
        n_items: number of artists; raw ids are names ``"Synthetic artist 0001"``.
        n_interactions: exact number of (user, artist) pairs; default
            ``min(48 n_users, n_users n_items)``.
        density: alternatively, the share of the matrix that is filled.
        n_clusters: number of taste clusters ``k``.
        dim: dimension of the taste space.
        popularity_exponent: Zipf exponent of artist popularity (0: uniform).
        activity_sigma: log-scale spread of the number of artists per user.
        taste_strength: how strongly taste affinity drives choice.
        attribute_effect: taste shift of the minority attribute value.
        seed: seed of the random generator; equal seeds give equal data.

    Returns:
        :class:`InteractionData`: play counts (float32); user attributes ``gender``
        ("M"/"F") and ``cluster``; item attributes ``name``, ``cluster`` and
        ``popularity``.

    Raises:
        ValueError: non-positive sizes, both or an impossible ``n_interactions`` /
            ``density``.
    """
    rng, rows, cols, aff, ucl, icl, minority, pop = _generate(
        "synthetic_lastfm",
        min(48 * n_users, n_users * n_items),
        n_users,
        n_items,
        n_interactions,
        density,
        n_clusters,
        dim,
        popularity_exponent,
        activity_sigma,
        taste_strength,
        attribute_effect,
        seed,
    )
    level = rng.normal(scale=0.6, size=n_users)[rows]
    plays = np.maximum(
        1.0,
        np.round(np.exp(4.3 + 0.5 * _standardise(aff) + level + 0.8 * rng.normal(size=len(rows)))),
    )
    ids = np.array(
        sorted(
            hashlib.sha1(f"widelab-user-{seed}-{u}".encode()).hexdigest() for u in range(n_users)
        )
    )
    width = len(str(n_items))
    names = np.array([f"Synthetic artist {j:0{width}d}" for j in range(1, n_items + 1)])
    matrix = csr_from_entries(rows, cols, plays, (n_users, n_items), np.float32)
    return InteractionData(
        matrix,
        ids,
        names,
        {"gender": np.where(minority, "F", "M"), "cluster": ucl},
        {"name": names, "cluster": icl, "popularity": pop},
        None,
        {"source": f"synthetic Last.fm-like (seed={seed})", "seed": seed, "n_clusters": n_clusters},
    )
