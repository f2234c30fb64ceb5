"""The two studies of Hron, Krauth, Jordan & Kilbertus (NeurIPS 2021) on planted data.

Study 1 (:func:`independent_vs_aligned_study`, cf. their Sec. 3 lower bound): with
low-capacity nominators trained independently, a pool allocation that mixes the item
groups makes every nominator nominate the same group (the most popular one), so the
two-stage precision is that of the users of that group, on par with uniformly random
recommendation, while pools aligned with the groups give near-perfect precision with the
same nominators and ranker.

Study 2 (:func:`pool_allocation_study`, cf. their Sec. 4): pools learned by a mixture of
experts recover the planted item groups (adjusted Rand index) and beat random pools on
precision and recall at K.
"""

from __future__ import annotations

import numpy as np

from .metrics import ranking_metrics
from .nominators import LinearNominator
from .planted import planted_groups
from .pools import kmeans_pools, learn_pools, random_pools
from .ranker import MLPRanker
from .two_stage import TwoStageRecommender, recommend_all

__all__ = ["independent_vs_aligned_study", "pool_allocation_study", "random_recommendation"]


def random_recommendation(train, k: int, *, seed: int = 0) -> np.ndarray:
    """Uniformly random ``k`` items per user among the items the user has not interacted with.

    Args:
        train: sparse ``(n_users, n_items)``.
        k: items per user.
        seed: seed.

    Returns:
        ``(n_users, k)`` item ids.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = train.shape
    out = np.empty((n_users, k), dtype=np.int64)
    for u in range(n_users):
        liked = train.indices[train.indptr[u] : train.indptr[u + 1]]
        free = np.setdiff1d(np.arange(n_items), liked)
        out[u] = rng.choice(free, size=k, replace=False)
    return out


def _two_stage(n_pools, k, rank, ranker_epochs, seed, nominator_epochs=100, bias=True):
    return TwoStageRecommender(
        nominators=[
            LinearNominator(rank=rank, bias=bias, epochs=nominator_epochs, seed=seed + j)
            for j in range(n_pools)
        ],
        ranker=MLPRanker(embedding_dim=16, hidden=32, epochs=ranker_epochs, seed=seed),
        candidates_per_nominator=k,
        feature_dim=8,
        seed=seed,
    )


def independent_vs_aligned_study(
    *, n_users: int = 400, n_groups: int = 4, items_per_group: int = 40, k: int = 5, seed: int = 0
) -> dict:
    """Study 1: independent nominators on mixed pools vs. the same on aligned pools.

    Users of type ``c`` like every item of group ``c`` (``p_in = 1``); type 0 is more
    active in training (30% of its items observed vs. 10%), so group-0 items are the most
    popular in every mixed pool. Nominators are popularity models (:class:`LinearNominator`
    with ``rank=0``, the low-capacity extreme), one per pool, each passing ``k`` candidates;
    the ranker is an :class:`MLPRanker`; ``K = k``.

    Args:
        n_users, n_groups, items_per_group: size of the planted data.
        k: candidates per nominator and cut-off K.
        seed: seed.

    Returns:
        ``{"independent_mixed", "aligned", "uniform_random"}`` -> :class:`RankingMetrics`,
        plus ``"majority_share"`` (fraction of type-0 users).
    """
    tf = np.full(n_groups, 0.9)
    tf[0] = 0.7
    d = planted_groups(
        n_users, n_groups, items_per_group, p_in=1.0, p_out=0.0, test_fraction=tf, seed=seed
    )
    n_items = d.train.shape[1]
    mixed = (np.arange(n_items) % items_per_group) % n_groups
    out = {}
    for name, pools in (("independent_mixed", mixed), ("aligned", d.item_group)):
        rec = _two_stage(n_groups, k, 0, 30, seed).fit(d.train, pools=pools)
        out[name] = ranking_metrics(recommend_all(rec, d.train, k), d.test)
    out["uniform_random"] = ranking_metrics(random_recommendation(d.train, k, seed=seed), d.test)
    out["majority_share"] = float(np.mean(d.user_group == 0))
    return out


def pool_allocation_study(
    data=None,
    *,
    n_pools: int = 4,
    k: int = 10,
    rank: int = 1,
    moe_epochs: int = 60,
    ranker_epochs: int = 20,
    seed: int = 0,
    progress=None,
    allocations=("random", "kmeans", "learned"),
) -> dict:
    """Study 2: random vs. k-means vs. learned (MoE) pools with low-capacity nominators.

    Args:
        data: a :class:`~widelab_recsys.planted.PlantedData`, or ``(train, test)``
            matrices (then no recovery scores); default: 8 planted groups of 25 items,
            800 users, ``p_in = 0.3``, ``p_out = 0.01``. The nominators are rank-``rank``
            :class:`LinearNominator` models without item bias: at rank 1 each orders its
            pool in one of two ways, so it can serve at most two groups well, and the
            candidate sets (``k`` per pool) bottleneck the ranker unless the pools follow
            the groups.
        n_pools: number of pools / nominators.
        k: candidates per nominator and cut-off K.
        rank: rank of every :class:`LinearNominator` (and MoE expert).
        moe_epochs: epochs of :func:`learn_pools`.
        ranker_epochs: ranker epochs.
        seed: seed.
        progress: optional callable wrapping an iterable (e.g. a tqdm bar).
        allocations: which of ``random``, ``kmeans``, ``learned`` to fit (each fits a
            two-stage system), in this order.

    Returns:
        ``{"metrics": {allocation: RankingMetrics}, "ari": {...}, "completeness": {...},
        "pools": {allocation: array}, "recommended": {allocation: (n_users, k) ids}}``
        over the requested allocations. ``ari`` (planted data only) is the adjusted Rand
        index against the planted groups (Hubert & Arabie 1985) and ``completeness`` is 1
        when every planted group lies inside one pool (Rosenberg & Hirschberg 2007).

    Raises:
        ValueError: for an empty ``allocations`` or an unknown name in it.
    """
    known = ("random", "kmeans", "learned")
    allocations = tuple(allocations)
    if not allocations or any(a not in known for a in allocations):
        raise ValueError(f"allocations must be a non-empty subset of {known}; got {allocations}")
    from sklearn.metrics import adjusted_rand_score, completeness_score

    from .features import svd_features

    if data is None:
        data = planted_groups(800, 8, 25, p_in=0.3, p_out=0.01, test_fraction=0.3, seed=seed)
    if isinstance(data, tuple):
        train, test = data
        planted = None
    else:
        train, test, planted = data.train, data.test, data.item_group
    fu, gi = svd_features(train, 8, seed=seed)
    make = {
        "random": lambda: random_pools(train.shape[1], n_pools, seed=seed),
        "kmeans": lambda: kmeans_pools(gi, n_pools, seed=seed),
        "learned": lambda: (
            learn_pools(
                train,
                n_pools,
                user_features=fu,
                item_features=gi,
                rank=rank,
                epochs=moe_epochs,
                seed=seed,
            ).pools
        ),
    }
    allocs = {name: make[name]() for name in known if name in allocations}
    wrap = progress or (lambda it: it)
    metrics, ari, comp, recommended = {}, {}, {}, {}
    for name in wrap(list(allocs)):
        rec = _two_stage(n_pools, k, rank, ranker_epochs, seed, bias=False)
        rec.fit(train, pools=allocs[name])
        recommended[name] = recommend_all(rec, train, k)
        metrics[name] = ranking_metrics(recommended[name], test)
        if planted is not None:
            ari[name] = float(adjusted_rand_score(planted, allocs[name]))
            comp[name] = float(completeness_score(planted, allocs[name]))
    return {
        "metrics": metrics,
        "ari": ari,
        "completeness": comp,
        "pools": allocs,
        "recommended": recommended,
    }
