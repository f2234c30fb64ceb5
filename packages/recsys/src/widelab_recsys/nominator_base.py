"""The nominator protocol and the host-side top-k shared by every nominator.

Every nominator works on *pool-local* columns: it is fitted on the ``(n_users, n_pool)``
sub-matrix of its pool and returns pool-local ids; :class:`~widelab_recsys.TwoStageRecommender`
maps them back to global item ids.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

__all__ = ["Nominator", "topk_filtered"]


def topk_filtered(scores, user_items, k: int, filter_already_liked_items: bool = True):
    """Top-k columns of each row of ``scores``, optionally skipping liked items.

    Args:
        scores: ``(n, m)`` array of scores.
        user_items: ``(n, m)`` sparse matrix of the same users' interactions (used only when
            filtering).
        k: number of ids per row (slots beyond the available items hold ``-1``).
        filter_already_liked_items: drop items with a nonzero in ``user_items``.

    Returns:
        ``(ids (n, k) int64, scores (n, k) float32)``, best first; empty slots have id ``-1``
        and score ``-inf``.
    """
    s = np.array(scores, dtype=np.float32, copy=True)
    n, m = s.shape
    if filter_already_liked_items and user_items is not None:
        liked = sp.csr_matrix(user_items)
        rows = np.repeat(np.arange(n), np.diff(liked.indptr))
        s[rows, liked.indices] = -np.inf
    kk = min(k, m)
    if kk < m:
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(m)[None, :], (n, m)).copy()
    ps = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-ps, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(ps, order, axis=1)
    ids[~np.isfinite(sc)] = -1
    if kk < k:
        ids = np.pad(ids, ((0, 0), (0, k - kk)), constant_values=-1)
        sc = np.pad(sc, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return ids, sc


class Nominator:
    """Protocol of a nominator (subclasses implement every method).

    Attributes:
        kind: a short name stored in saved files.
    """

    kind: ClassVar[str] = ""
    supports_partial_fit_items: ClassVar[bool] = False

    def fit(
        self, user_items, *, user_features=None, item_features=None, sample_weight=None
    ) -> Nominator:
        """Fit on the pool's ``(n_users, n_pool)`` interactions; returns ``self``.

        ``sample_weight`` (sparse, same shape) weighs each observed pair, e.g. by
        :func:`ranker_importance_weights`; pairs it leaves out weigh 0."""
        raise NotImplementedError

    def nominate(
        self,
        userids,
        user_items,
        k: int,
        *,
        user_features=None,
        filter_already_liked_items: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` pool-local candidates for each user: ``(ids (n, k), scores (n, k))``."""
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(config, arrays)`` from which :func:`nominator_from_state` rebuilds the model."""
        raise NotImplementedError

    def recalculate_user(self, userid, user_items, *, user_features=None) -> np.ndarray:
        """User embeddings ``(n, r)`` computed from ``user_items`` rows alone (implicit's
        ``recalculate_user``), matching the item side of :meth:`embeddings`."""
        raise NotImplementedError(f"{type(self).__name__} does not support recalculate_user")

    def partial_fit_users(self, userids, user_items, *, user_features=None) -> None:
        """Refit (or add) the given users from their pool rows without a full refit."""
        raise NotImplementedError(f"{type(self).__name__} does not support partial_fit_users")

    def partial_fit_items(
        self, itemids, item_users, *, item_features=None, user_features=None
    ) -> None:
        """Refit (or add) pool-local items from their ``(items, users)`` rows
        (``user_features``: all users' features, for models whose user side uses them)."""
        raise NotImplementedError(f"{type(self).__name__} does not support partial_fit_items")

    def embeddings(self, userids, *, user_features=None):
        """``(U (n, r), V (n_pool, r))`` with scores ``U Vᵀ``, or None if not factorised.

        Every nominator here is a dot-product model, which lets
        :meth:`TwoStageRecommender.recommend` score all pools and the ranker in one
        compiled call.
        """
        return None
