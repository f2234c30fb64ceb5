"""Ranking metrics at a cut-off K, computed from recommended ids and held-out interactions.

Denominators (stated once, used everywhere in this package):

* ``precision_at_k`` = |top-K ∩ relevant| / K  (textbook precision; a user with fewer than
  K relevant items cannot reach 1).
* ``recall_at_k`` = |top-K ∩ relevant| / |relevant|.
* ``implicit_precision_at_k`` = |top-K ∩ relevant| / min(K, |relevant|). This is what
  ``implicit.evaluation.precision_at_k`` reports under the name "precision"; it is a
  truncated recall and is reported here only for comparison.
* ``ndcg_at_k`` = DCG@K / IDCG@K with binary gains, DCG = Σ_{r=1..K} rel_r / log2(r + 1)
  and IDCG the DCG of min(K, |relevant|) hits at the top (Järvelin & Kekäläinen 2002).

Users with no held-out items are skipped (they are undefined for recall and NDCG) and the
metrics are averaged over the remaining users.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

__all__ = [
    "RankingMetrics",
    "hits_at_k",
    "implicit_precision_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
]


def _check(recommended, test_user_items, userids):
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be a 2-D array (users, K); got shape {rec.shape}")
    if rec.size:
        srt = np.sort(rec, axis=1)
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if dup.any():
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            item = srt[row, 1:][dup[row]][0]
            raise ValueError(
                f"recommended row {row} lists item {item} more than once; a top-K list "
                "holds distinct items (use -1 for empty slots)"
            )
    if not sp.issparse(test_user_items):
        raise TypeError("test_user_items must be a scipy.sparse matrix (users x items)")
    test = sp.csr_matrix(test_user_items)
    if userids is None:
        userids = np.arange(rec.shape[0])
    userids = np.asarray(userids)
    if userids.shape != (rec.shape[0],):
        raise ValueError(
            f"userids has shape {userids.shape} but recommended has {rec.shape[0]} rows"
        )
    if userids.size and (userids.min() < 0 or userids.max() >= test.shape[0]):
        raise IndexError(f"userids out of range for test_user_items with {test.shape[0]} rows")
    return rec, test, userids


def hits_at_k(recommended, test_user_items, userids=None) -> tuple[np.ndarray, np.ndarray]:
    """Binary hit matrix and relevant-set sizes.

    Args:
        recommended: ``(n, K)`` item ids, best first (``-1`` marks an empty slot).
        test_user_items: sparse ``(n_users, n_items)`` held-out interactions (nonzero =
            relevant).
        userids: row of ``test_user_items`` for each row of ``recommended``; default
            ``arange(n)``.

    Returns:
        ``(hits, n_relevant)``: ``hits[u, r]`` is 1.0 when the item at rank ``r`` is relevant,
        ``n_relevant[u]`` is |relevant| for that user.

    Raises:
        ValueError, TypeError, IndexError: on malformed inputs (message names the argument),
            including an item listed twice in one row of ``recommended``.
    """
    rec, test, userids = _check(recommended, test_user_items, userids)
    sub = test[userids]
    sub.eliminate_zeros()
    n_relevant = np.diff(sub.indptr).astype(np.float64)
    hits = np.zeros(rec.shape, dtype=np.float64)
    for row in range(rec.shape[0]):
        rel = sub.indices[sub.indptr[row] : sub.indptr[row + 1]]
        if rel.size:
            hits[row] = np.isin(rec[row], rel) & (rec[row] >= 0)
    return hits, n_relevant


def precision_at_k(recommended, test_user_items, userids=None) -> float:
    """Textbook precision@K = mean over users with held-out items of |top-K ∩ rel| / K.

    Args:
        recommended: ``(n, K)`` item ids, best first.
        test_user_items: sparse held-out interactions.
        userids: rows of ``test_user_items`` (default ``arange(n)``).

    Returns:
        The mean precision (0.0 when no user has held-out items).
    """
    hits, n_rel = hits_at_k(recommended, test_user_items, userids)
    keep = n_rel > 0
    return float(hits[keep].sum(axis=1).mean() / hits.shape[1]) if keep.any() else 0.0


def recall_at_k(recommended, test_user_items, userids=None) -> float:
    """Recall@K = mean over users with held-out items of |top-K ∩ rel| / |rel|.

    Args:
        recommended: ``(n, K)`` item ids, best first.
        test_user_items: sparse held-out interactions.
        userids: rows of ``test_user_items`` (default ``arange(n)``).

    Returns:
        The mean recall.

    Raises:
        ValueError: an item listed twice in one row of ``recommended`` (the metric is
            defined on a list of distinct items), or malformed shapes.
    """
    hits, n_rel = hits_at_k(recommended, test_user_items, userids)
    keep = n_rel > 0
    return float((hits[keep].sum(axis=1) / n_rel[keep]).mean()) if keep.any() else 0.0


def implicit_precision_at_k(recommended, test_user_items, userids=None) -> float:
    """implicit's "precision": |top-K ∩ rel| / min(K, |rel|), averaged over users.

    ``implicit.evaluation.precision_at_k`` divides by ``min(K, |rel|)``, not by ``K``; the
    two agree only for users with at least K relevant items.

    Args:
        recommended: ``(n, K)`` item ids, best first.
        test_user_items: sparse held-out interactions.
        userids: rows of ``test_user_items`` (default ``arange(n)``).

    Returns:
        The mean of the per-user ratio. (implicit pools numerators and denominators over
        users before dividing; :func:`ranking_metrics` reports that pooled variant as
        ``implicit_precision_pooled``.)
    """
    hits, n_rel = hits_at_k(recommended, test_user_items, userids)
    keep = n_rel > 0
    if not keep.any():
        return 0.0
    den = np.minimum(hits.shape[1], n_rel[keep])
    return float((hits[keep].sum(axis=1) / den).mean())


def ndcg_at_k(recommended, test_user_items, userids=None) -> float:
    """NDCG@K with binary gains (Järvelin & Kekäläinen 2002), averaged over users.

    ``DCG = Σ_r hit_r / log2(r + 1)`` for ranks ``r = 1..K``; ``IDCG`` places
    ``min(K, |rel|)`` hits at the top.

    Args:
        recommended: ``(n, K)`` item ids, best first.
        test_user_items: sparse held-out interactions.
        userids: rows of ``test_user_items`` (default ``arange(n)``).

    Returns:
        The mean NDCG@K.

    Raises:
        ValueError: an item listed twice in one row of ``recommended`` (the metric is
            defined on a list of distinct items), or malformed shapes.
    """
    hits, n_rel = hits_at_k(recommended, test_user_items, userids)
    keep = n_rel > 0
    if not keep.any():
        return 0.0
    k = hits.shape[1]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits[keep] @ discount
    ideal = np.cumsum(discount)[np.minimum(k, n_rel[keep]).astype(int) - 1]
    return float((dcg / ideal).mean())


@dataclasses.dataclass(frozen=True)
class RankingMetrics:
    """All metrics at one cut-off K (see the module docstring for the denominators)."""

    k: int
    precision: float
    recall: float
    ndcg: float
    implicit_precision: float
    implicit_precision_pooled: float
    n_users: int


def ranking_metrics(recommended, test_user_items, userids=None) -> RankingMetrics:
    """Every metric of this module at K = ``recommended.shape[1]`` in one pass.

    Args:
        recommended: ``(n, K)`` item ids, best first.
        test_user_items: sparse held-out interactions.
        userids: rows of ``test_user_items`` (default ``arange(n)``).

    Returns:
        A :class:`RankingMetrics`.
    """
    hits, n_rel = hits_at_k(recommended, test_user_items, userids)
    keep = n_rel > 0
    k = hits.shape[1]
    if not keep.any():
        return RankingMetrics(k, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    h = hits[keep]
    n = n_rel[keep]
    nh = h.sum(axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(k, n).astype(int) - 1]
    return RankingMetrics(
        k=k,
        precision=float(nh.mean() / k),
        recall=float((nh / n).mean()),
        ndcg=float(((h @ discount) / ideal).mean()),
        implicit_precision=float((nh / np.minimum(k, n)).mean()),
        implicit_precision_pooled=float(nh.sum() / np.minimum(k, n).sum()),
        n_users=int(keep.sum()),
    )
