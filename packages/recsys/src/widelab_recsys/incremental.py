"""Updating a fitted two-stage recommender without a refit (implicit's ``partial_fit_*``).

New users and items get SVD features folded in from their interactions (Sarwar et al.
2002; :mod:`.features`), the nominators refit only the given rows (ALS: one least-squares
step against the fixed factors of the other side, Hu, Koren & Volinsky 2008, eq. 4), and
the ranker gives new ids a zero id embedding.
"""

from __future__ import annotations

import numpy as np

from ._validate import check_features, check_user_items
from .features import fold_in_items, fold_in_users, user_weights

__all__: list[str] = []


class _Incremental:
    """``partial_fit_users`` / ``partial_fit_items`` of :class:`TwoStageRecommender`."""

    def _fold_in_users(self, rows, user_features=None):
        """Features of users given by their rows: extra features (if the model was fitted
        with any) followed by SVD features folded in from the rows."""
        if self.fold_in is None:
            raise ValueError(
                "this model has no fold-in scale (saved by an older version); refit it"
            )
        d = self.feature_dim
        svd = fold_in_users(rows, self.item_features[:, -d:], self.fold_in)
        n_extra = self.user_features.shape[1] - d
        if n_extra == 0:
            return svd
        if user_features is None:
            raise ValueError(
                f"the model was fitted with {n_extra} user feature columns; pass "
                "user_features for these users (partial_fit_users(..., user_features=...))"
            )
        extra = check_features(user_features, rows.shape[0], "user_features")
        if extra.shape[1] != n_extra:
            raise ValueError(f"user_features must have {n_extra} columns; got {extra.shape[1]}")
        return np.hstack([extra, svd])

    def partial_fit_users(self, userids, user_items, user_features=None):
        """Fit new users, or refit existing ones, without refitting the model (implicit's
        ``partial_fit_users``).

        Each user's SVD features are folded in from its row (:func:`fold_in_users`), each
        nominator refits the user on its pool's columns (ALS: implicit's least-squares
        user step against the fixed item factors, Hu et al. 2008, eq. 4; JAX nominators:
        nothing to fit, the user side is a function of the features), and the ranker
        gives new users a zero id embedding (existing users keep theirs). Ids beyond the
        known users extend the model; skipped ids get zero features.

        Args:
            userids: ``(n,)`` distinct non-negative user ids.
            user_items: sparse ``(n, n_items)`` rows, one per id.
            user_features: ``(n, F)`` extra features, required when the model was fitted
                with ``user_features``.

        Returns:
            ``self``.

        Raises:
            ValueError: for repeated or negative ids, or rows of the wrong shape.
        """
        self._check_fitted()
        ids = np.atleast_1d(np.asarray(userids))
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or ids.size == 0:
            raise ValueError(f"userids must be a non-empty 1-D int array; got {ids!r}")
        if ids.min() < 0 or np.unique(ids).size != ids.size:
            raise ValueError("userids must be distinct non-negative ids")
        rows = self._check_rows(user_items, len(ids))
        fu_new = self._fold_in_users(rows, user_features)
        n_old = self.user_features.shape[0]
        n_new = max(n_old, int(ids.max()) + 1)
        fu = np.zeros((n_new, self.user_features.shape[1]), np.float32)
        fu[:n_old] = self.user_features
        fu[ids] = fu_new
        self.user_features = fu
        if self.user_weight is not None:
            w = np.ones(n_new, np.float32)
            w[:n_old] = self.user_weight[:n_old]
            w[ids] = user_weights(rows)
            self.user_weight = w
        p = self.ranker.params
        if n_new > n_old:
            extra = np.zeros((n_new - n_old, p["P"].shape[1]), np.float32)
            self.ranker.params = {**p, "P": np.concatenate([np.asarray(p["P"]), extra])}
        by_column = rows.tocsc()
        for j, nom in enumerate(self.nominators):
            pool_rows = by_column[:, self._pool_items(j)].tocsr()
            nom.partial_fit_users(ids, pool_rows, user_features=self.user_features)
        return self

    def partial_fit_items(self, itemids, item_users, item_features=None, pools=None):
        """Fit new items, or refit existing ones, without refitting the model (implicit's
        ``partial_fit_items``).

        Each item's SVD features are folded in from its users,
        ``g_i = Σ_u [x_ui > 0] w_u f_u / c'`` (:func:`fold_in_items`). A new item joins the
        pool given in ``pools``, by default the pool whose mean item feature vector is
        nearest (Euclidean; the k-means assignment rule); an existing item keeps its pool.
        Each nominator refits its items from their users (ALS: implicit's least-squares
        item step ``y_i = (XᵀX + Xᵀ(C_i - I)X + λI)⁻¹ Xᵀ C_i p_i``, Hu et al. 2008, eq. 5;
        nominators without an item step raise before anything changes). The ranker gives
        new items a zero id embedding and the mean item bias.

        Args:
            itemids: ``(n,)`` distinct ids: known items, or new ids that extend the
                catalogue contiguously (every id from ``n_items`` to the largest given).
            item_users: sparse ``(n, n_users)`` rows, one per id (implicit's layout).
            item_features: ``(n, G)`` extra features, required when the model was fitted
                with ``item_features``.
            pools: optional ``(n,)`` pools of the new ids (ignored for known items).

        Returns:
            ``self``.

        Raises:
            NotImplementedError: if a nominator has no item step (BPR, JAX nominators).
            ValueError: for repeated, negative or non-contiguous new ids, rows of the wrong
                shape, a model saved without item fold-in data, or pools out of range.

        Example:
            >>> import scipy.sparse as sp
            >>> from widelab_recsys import TwoStageRecommender, ALSNominator, MLPRanker
            >>> m = sp.random(40, 30, density=0.2, format="csr", random_state=0)
            >>> rec = TwoStageRecommender(
            ...     nominators=[ALSNominator(factors=2, iterations=2) for _ in range(2)],
            ...     ranker=MLPRanker(embedding_dim=4, hidden=8, epochs=1),
            ...     candidates_per_nominator=5, feature_dim=4).fit(m)
            >>> rec.partial_fit_items([30, 31], m.T.tocsr()[[0, 1]]).item_features.shape[0]
            32
        """
        self._check_fitted()
        ids = np.atleast_1d(np.asarray(itemids))
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or ids.size == 0:
            raise ValueError(f"itemids must be a non-empty 1-D int array; got {ids!r}")
        if ids.min() < 0 or np.unique(ids).size != ids.size:
            raise ValueError("itemids must be distinct non-negative ids")
        n_old = self.item_features.shape[0]
        new = ids[ids >= n_old]
        if new.size and not np.array_equal(np.sort(new), np.arange(n_old, n_old + new.size)):
            raise ValueError(
                f"new itemids must extend the catalogue contiguously from {n_old}; "
                f"got new ids {np.sort(new).tolist()}"
            )
        missing = [type(n).__name__ for n in self.nominators if not n.supports_partial_fit_items]
        if missing:
            raise NotImplementedError(
                f"partial_fit_items needs an item step in every nominator; {missing} have none"
            )
        if self.item_fold_in is None or self.user_weight is None:
            raise ValueError("this model has no item fold-in data (saved by an older version)")
        n_users = self.user_features.shape[0]
        cols = check_user_items(item_users)
        if cols.shape != (len(ids), n_users):
            raise ValueError(
                f"item_users must hold one row per item id: expected shape "
                f"({len(ids)}, {n_users}), got {cols.shape}"
            )
        d = self.feature_dim
        g_new = fold_in_items(cols, self.user_features[:, -d:], self.user_weight, self.item_fold_in)
        n_extra = self.item_features.shape[1] - d
        if n_extra:
            if item_features is None:
                raise ValueError(
                    f"the model was fitted with {n_extra} item feature columns; pass "
                    "item_features for these items"
                )
            extra = check_features(item_features, len(ids), "item_features")
            if extra.shape[1] != n_extra:
                msg = f"item_features must have {n_extra} columns; got {extra.shape[1]}"
                raise ValueError(msg)
            g_new = np.hstack([extra, g_new])
        is_new = ids >= n_old
        if pools is None:
            centroids = np.stack(
                [self.item_features[self.pools == j].mean(axis=0) for j in range(self.n_pools)]
            )
            dist = ((g_new[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1)
            new_pools = dist.argmin(axis=1)
        else:
            new_pools = np.asarray(pools)
            if new_pools.shape != ids.shape or not np.issubdtype(new_pools.dtype, np.integer):
                raise ValueError(f"pools must be an int array of shape {ids.shape}")
            if new_pools.min() < 0 or new_pools.max() >= self.n_pools:
                raise ValueError(f"pools values must lie in 0..{self.n_pools - 1}")
        n_all = n_old + int(is_new.sum())
        pool_all = np.concatenate([self.pools, np.zeros(n_all - n_old, np.int64)])
        pool_all[ids[is_new]] = new_pools[is_new]
        features = np.concatenate(
            [self.item_features, np.zeros((n_all - n_old, g_new.shape[1]), np.float32)]
        )
        features[ids] = g_new
        self.pools, self.item_features = pool_all, features
        p = self.ranker.params
        if n_all > n_old:
            q = np.asarray(p["Q"])
            bias = np.asarray(p["bi"])
            self.ranker.params = {
                **p,
                "Q": np.concatenate([q, np.zeros((n_all - n_old, q.shape[1]), q.dtype)]),
                "bi": np.concatenate([bias, np.full(n_all - n_old, bias.mean(), bias.dtype)]),
            }
        for j, nom in enumerate(self.nominators):
            members = self._pool_items(j)
            mine = np.flatnonzero(pool_all[ids] == j)
            if mine.size:
                local = np.searchsorted(members, ids[mine])
                nom.partial_fit_items(
                    local,
                    cols[mine],
                    item_features=features[ids[mine]],
                    user_features=self.user_features,
                )
        return self
