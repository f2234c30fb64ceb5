"""implicit-style evaluation: MAP@K, AUC@K, a model-level ``ranking_metrics_at_k`` and the
leave-k-out split, with the definitions of ``implicit.evaluation`` (implicit 0.7).

* ``map_at_k``: mean over users with held-out items of
  ``AP@K = (1 / min(K, |rel|)) Σ_{r ≤ K, hit at r} hits(≤ r) / r``.
* ``auc_at_k``: the AUC of the ranking truncated at K, where every item below the cut-off
  counts as tied: with ``P = |rel|``, ``Q = n_items - P``, ``h`` hits and ``m`` misses in
  the top K, ``AUC@K = (Σ_{misses in top K} hits ranked above it + (h + P)/2 · (Q - m)) /
  (P Q)``. A random ranking scores 1/2 in expectation; a perfect one scores 1. This is
  the fraction of (relevant, non-relevant) pairs ordered correctly, ties counting 1/2.
  Empty slots (``-1``, fewer than K items returned) are not misses here; implicit counts
  them as misses, so the two agree whenever every slot holds an item.
* ``ranking_metrics_at_k(model, train, test, K)`` returns implicit's dictionary
  (``precision`` with implicit's pooled denominator Σ min(K, |rel|), ``map``, ``ndcg``,
  ``auc``), so code written against implicit runs unchanged on any model here.

Users with no held-out items are skipped, as in implicit (and, for AUC, users for whom
every item is held out, where AUC is undefined).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .metrics import hits_at_k

__all__ = ["auc_at_k", "leave_k_out_split", "map_at_k", "ranking_metrics_at_k"]


def _check_no_duplicates(recommended):
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be a 2-D array (users, K); got shape {rec.shape}")
    srt = np.sort(rec, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        row = int(np.flatnonzero(dup.any(axis=1))[0])
        item = int(srt[row, 1:][dup[row]][0])
        raise ValueError(
            f"recommended row {row} lists item {item} more than once; each row must hold "
            "distinct item ids (-1 for empty slots)"
        )


def _average_precision(hits, n_rel):
    k = hits.shape[1]
    cum = np.cumsum(hits, axis=1)
    prec = cum / np.arange(1, k + 1)[None, :]
    return (prec * hits).sum(axis=1) / np.minimum(k, n_rel)


def _auc(hits, valid, n_rel, n_items):
    misses = valid * (1.0 - hits)  # an empty slot (-1) is no item: neither hit nor miss
    above = np.cumsum(hits, axis=1)  # hits ranked at or above each slot
    auc = (misses * above).sum(axis=1)
    h = hits.sum(axis=1)
    m = misses.sum(axis=1)
    neg = n_items - n_rel
    auc = auc + (h + n_rel) / 2.0 * (neg - m)
    return auc / (n_rel * neg)


def map_at_k(recommended, test_user_items, userids=None) -> float:
    """Mean average precision at K, as ``implicit.evaluation.mean_average_precision_at_k``.

    ``AP@K = (1 / min(K, |rel|)) Σ_r hit_r · precision@r`` (Manning, Raghavan & Schütze
    2008, eq. 8.7, truncated at K), averaged over users with held-out items.

    Args:
        recommended: ``(n, K)`` distinct item ids per row, best first (``-1`` = empty slot).
        test_user_items: sparse held-out interactions.
        userids: rows of ``test_user_items`` (default ``arange(n)``).

    Returns:
        MAP@K (0.0 when no user has held-out items).

    Raises:
        ValueError: for a row that repeats an item, or malformed inputs.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> test = sp.csr_matrix(np.array([[0, 1, 1, 0]], dtype=np.float32))
        >>> round(map_at_k(np.array([[1, 0, 2]]), test), 4)  # (1/1 + 2/3) / 2
        0.8333
    """
    _check_no_duplicates(recommended)
    hits, n_rel = hits_at_k(recommended, test_user_items, userids)
    keep = n_rel > 0
    if not keep.any():
        return 0.0
    return float(_average_precision(hits[keep], n_rel[keep]).mean())


def auc_at_k(recommended, test_user_items, userids=None) -> float:
    """AUC of the top-K ranking with the rest tied, as ``implicit.evaluation.AUC_at_k``.

    The module docstring gives the formula; the number of items is
    ``test_user_items.shape[1]``.

    Args:
        recommended: ``(n, K)`` distinct item ids per row, best first.
        test_user_items: sparse held-out interactions.
        userids: rows of ``test_user_items`` (default ``arange(n)``).

    Returns:
        AUC@K averaged over users with held-out items (0.0 if there are none).

    Raises:
        ValueError: for a row that repeats an item, or malformed inputs.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> test = sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=np.float32))
        >>> auc_at_k(np.array([[1, 0]]), test)
        1.0
    """
    _check_no_duplicates(recommended)
    hits, n_rel = hits_at_k(recommended, test_user_items, userids)
    keep = (n_rel > 0) & (n_rel < test_user_items.shape[1])
    if not keep.any():
        return 0.0
    valid = (np.asarray(recommended) >= 0).astype(np.float64)
    return float(_auc(hits[keep], valid[keep], n_rel[keep], test_user_items.shape[1]).mean())


def ranking_metrics_at_k(
    model, train_user_items, test_user_items, K: int = 10, batch_size: int = 1024
) -> dict[str, float]:
    """implicit's ``ranking_metrics_at_k`` for any model with implicit's ``recommend``.

    Recommends ``K`` items (already-liked items of ``train_user_items`` filtered) to every
    user with held-out items and returns implicit's four metrics with implicit's
    definitions: ``precision`` = Σ hits / Σ min(K, |rel|) (pooled over users), ``map``,
    ``ndcg`` (binary gains, ideal DCG of min(K, |rel|) hits) and ``auc`` (module
    docstring), each a mean over those users.

    Args:
        model: an object with ``recommend(userids, user_items, N=...)`` returning
            ``(ids, scores)`` (a :class:`~widelab_recsys.TwoStageRecommender`, a nominator,
            or an implicit model).
        train_user_items: sparse ``(n_users, n_items)`` training interactions.
        test_user_items: sparse held-out interactions of the same shape.
        K: cut-off.
        batch_size: users per ``recommend`` call.

    Returns:
        ``{"precision", "map", "ndcg", "auc"}``.

    Raises:
        ValueError: if the matrices differ in shape or ``K < 1``.
    """
    if not (sp.issparse(train_user_items) and sp.issparse(test_user_items)):
        raise TypeError("train_user_items and test_user_items must be scipy.sparse matrices")
    train = sp.csr_matrix(train_user_items)
    test = sp.csr_matrix(test_user_items)
    if train.shape != test.shape:
        raise ValueError(
            f"train_user_items has shape {train.shape} but test_user_items has {test.shape}"
        )
    if int(K) < 1:
        raise ValueError(f"K must be >= 1; got {K}")
    test.eliminate_zeros()
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if users.size == 0:
        return {"precision": 0.0, "map": 0.0, "ndcg": 0.0, "auc": 0.0}
    recs = []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        ids, _ = model.recommend(batch, train[batch], N=K)
        ids = np.asarray(ids).reshape(len(batch), -1)
        if ids.shape[1] < K:
            ids = np.pad(ids, ((0, 0), (0, K - ids.shape[1])), constant_values=-1)
        recs.append(ids)
    rec = np.concatenate(recs)
    _check_no_duplicates(rec)
    hits, n_rel = hits_at_k(rec, test, users)
    n_items = test.shape[1]
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    ideal = np.cumsum(discount)[np.minimum(K, n_rel).astype(int) - 1]
    auc_rows = n_rel < n_items
    valid = (rec >= 0).astype(np.float64)
    return {
        "precision": float(hits.sum() / np.minimum(K, n_rel).sum()),
        "map": float(_average_precision(hits, n_rel).mean()),
        "ndcg": float(((hits @ discount) / ideal).mean()),
        "auc": float(_auc(hits[auc_rows], valid[auc_rows], n_rel[auc_rows], n_items).mean())
        if auc_rows.any()
        else 0.0,
    }


def leave_k_out_split(ratings, K: int = 1, train_only_size: float = 0.0, random_state=None):
    """Leave-k-out split with ``implicit.evaluation.leave_k_out_split``'s rules.

    Every user with more than ``K + 1`` interactions has ``K`` of them, drawn uniformly
    without replacement, moved to the test matrix; other users stay in training only. A
    fraction ``train_only_size`` of the users with interactions, drawn at random, is kept
    out of the test matrix as well.

    Args:
        ratings: sparse ``(n_users, n_items)`` interactions.
        K: interactions held out per eligible user.
        train_only_size: fraction in ``[0, 1)`` of users kept in training only.
        random_state: seed (int), a ``numpy.random.Generator``, or None.

    Returns:
        ``(train, test)`` CSR matrices of ``ratings``' shape and dtype whose sum is
        ``ratings``.

    Raises:
        TypeError: if ``ratings`` is not sparse.
        ValueError: for ``K < 1`` or ``train_only_size`` outside ``[0, 1)``.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> r = sp.csr_matrix(np.ones((3, 5), dtype=np.float32))
        >>> train, test = leave_k_out_split(r, K=2, random_state=0)
        >>> np.diff(test.indptr).tolist(), train.nnz
        ([2, 2, 2], 9)
    """
    if not sp.issparse(ratings):
        raise TypeError(f"ratings must be a scipy.sparse matrix; got {type(ratings).__name__}")
    if not isinstance(K, int | np.integer) or K < 1:
        raise ValueError(f"K must be a positive int; got {K!r}")
    if not 0.0 <= train_only_size < 1.0:
        raise ValueError(f"train_only_size must lie in [0, 1); got {train_only_size}")
    rng = np.random.default_rng(random_state)
    m = sp.csr_matrix(ratings, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    counts = np.diff(m.indptr)
    eligible = counts > K + 1
    if train_only_size > 0.0:
        active = np.flatnonzero(counts > 0)
        n_only = int(np.floor(train_only_size * len(active)))
        eligible[rng.choice(active, size=n_only, replace=False)] = False
    # one uniform key per stored entry; the K smallest keys of each eligible row go to test
    keys = rng.random(m.nnz)
    row_of = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((keys, row_of))
    rank = np.empty(m.nnz, np.int64)
    rank[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
    to_test = eligible[row_of] & (rank < K)
    test = sp.csr_matrix(
        (m.data[to_test], (row_of[to_test], m.indices[to_test])), shape=m.shape, dtype=m.dtype
    )
    train = sp.csr_matrix(
        (m.data[~to_test], (row_of[~to_test], m.indices[~to_test])), shape=m.shape, dtype=m.dtype
    )
    return train, test
