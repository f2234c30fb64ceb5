"""The two-stage recommender: nominators on item pools, then a ranker over their union.

Follows implicit's conventions (``implicit/recommender_base.py``): ``fit(user_items)`` on a
users x items CSR matrix, ``recommend(userids, user_items, N, filter_already_liked_items)``
batched over users (``user_items`` holds one row per requested user), and
``save``/``load``. Setup of Hron, Krauth, Jordan & Kilbertus (2021, Sec. 2): nominator
``j`` sees only the items of pool ``j`` and nominates its top ``k``; the ranker scores the
union and serves the top ``N``.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from widelab_core.validate import require_float

from ._validate import check_features, check_user_items, check_userids
from .features import (
    item_fold_in_scale,
    svd_features,
    user_fold_in_scale,
    user_weights,
)
from .incremental import _Incremental
from .nominators import ALSNominator, Nominator, nominator_from_state
from .pools import kmeans_pools, learn_pools, random_pools
from .ranker import MLPRanker
from .serving import cosine_topk, rank_union, serve
from .weighting import ranker_importance_weights

__all__ = ["TwoStageRecommender"]

_ALLOCATIONS = ("random", "kmeans", "learned")
_WEIGHTINGS = ("independent", "ranker")


@dataclasses.dataclass
class TwoStageRecommender(_Incremental):
    """Nominators restricted to item pools plus a ranker re-ranking the union.

    Args:
        nominators: one fitted-or-not :class:`Nominator` per pool (default: four
            :class:`ALSNominator`).
        ranker: the ranker (default :class:`MLPRanker`).
        allocation: how pools are chosen at ``fit`` when none are given: ``"random"``,
            ``"kmeans"`` (on SVD item features) or ``"learned"`` (:func:`learn_pools`).
        candidates_per_nominator: ``k``, candidates each nominator passes on.
        feature_dim: dimension of the SVD features added to any given features.
        seed: seed of features, pools and models that take no seed of their own.
        nominator_weighting: ``"independent"`` (every observed pair weighs 1) or
            ``"ranker"``: the ranker is fitted first and each pair ``(u, i)`` weighs
            ``π_R(i | u)`` in the nominators' losses (importance-weighted training, Ma et
            al. 2020; :func:`ranker_importance_weights`).
        weighting_temperature: ``τ`` of the ranker's softmax for ``"ranker"`` weighting.

    Example:
        >>> import scipy.sparse as sp
        >>> from widelab_recsys import TwoStageRecommender, ALSNominator, MLPRanker
        >>> m = sp.random(40, 30, density=0.2, format="csr", random_state=0)
        >>> rec = TwoStageRecommender(
        ...     nominators=[ALSNominator(factors=2, iterations=2) for _ in range(2)],
        ...     ranker=MLPRanker(embedding_dim=4, hidden=8, epochs=1),
        ...     candidates_per_nominator=5, feature_dim=4).fit(m)
        >>> ids, scores = rec.recommend([0, 1], m[[0, 1]], N=3)
        >>> ids.shape
        (2, 3)
    """

    nominators: Sequence[Nominator] | None = None
    ranker: MLPRanker | None = None
    allocation: str = "random"
    candidates_per_nominator: int = 50
    feature_dim: int = 16
    seed: int = 0
    nominator_weighting: str = "independent"
    weighting_temperature: float = 1.0
    pools: np.ndarray | None = dataclasses.field(default=None, repr=False)
    user_features: np.ndarray | None = dataclasses.field(default=None, repr=False)
    item_features: np.ndarray | None = dataclasses.field(default=None, repr=False)
    fold_in: np.ndarray | None = dataclasses.field(default=None, repr=False)
    item_fold_in: np.ndarray | None = dataclasses.field(default=None, repr=False)
    user_weight: np.ndarray | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        if self.nominators is None:
            self.nominators = [ALSNominator(random_state=self.seed + j) for j in range(4)]
        self.nominators = list(self.nominators)
        if not self.nominators:
            raise ValueError("nominators must hold at least one nominator")
        if self.ranker is None:
            self.ranker = MLPRanker(seed=self.seed)
        if self.allocation not in _ALLOCATIONS:
            raise ValueError(f"allocation must be one of {_ALLOCATIONS}; got {self.allocation!r}")
        if self.nominator_weighting not in _WEIGHTINGS:
            raise ValueError(
                f"nominator_weighting must be one of {_WEIGHTINGS}; "
                f"got {self.nominator_weighting!r}"
            )
        require_float(self.weighting_temperature, "weighting_temperature", min=0, min_open=True)
        if self.candidates_per_nominator < 1:
            raise ValueError("candidates_per_nominator must be >= 1")

    @property
    def n_pools(self) -> int:
        """Number of pools (= nominators)."""
        return len(self.nominators)

    def fit(self, user_items, user_features=None, item_features=None, pools=None):
        """Fit pools, nominators and ranker.

        Args:
            user_items: sparse ``(n_users, n_items)`` interactions (confidences).
            user_features: optional ``(n_users, F)`` features (e.g. attributes); SVD
                features of ``user_items`` are always appended.
            item_features: optional ``(n_items, G)`` features, likewise.
            pools: optional ``(n_items,)`` allocation overriding ``allocation``.

        Returns:
            ``self``.

        Raises:
            TypeError, ValueError: for malformed matrices, features or pools.
        """
        m = check_user_items(user_items)
        n_users, n_items = m.shape
        fu, gi = svd_features(m, self.feature_dim, seed=self.seed)
        self.fold_in = user_fold_in_scale(m, fu, gi)
        self.item_fold_in = item_fold_in_scale(m, fu, gi)
        self.user_weight = user_weights(m)
        if user_features is not None:
            fu = np.hstack([check_features(user_features, n_users, "user_features"), fu])
        if item_features is not None:
            gi = np.hstack([check_features(item_features, n_items, "item_features"), gi])
        self.user_features, self.item_features = fu, gi
        p = self.n_pools
        if pools is not None:
            pools = np.asarray(pools)
            if pools.shape != (n_items,) or not np.issubdtype(pools.dtype, np.integer):
                raise ValueError(f"pools must be an int array of shape ({n_items},)")
            if pools.min() < 0 or pools.max() >= p:
                raise ValueError(f"pools values must lie in 0..{p - 1} (one per nominator)")
            self.pools = pools.astype(np.int64)
        elif self.allocation == "random":
            self.pools = random_pools(n_items, p, seed=self.seed)
        elif self.allocation == "kmeans":
            self.pools = kmeans_pools(gi, p, seed=self.seed)
        else:
            self.pools = learn_pools(m, p, user_features=fu, item_features=gi, seed=self.seed).pools
        self.ranker.fit(m, fu, gi)
        weights = None
        if self.nominator_weighting == "ranker":
            weights = ranker_importance_weights(
                self.ranker, m, fu, gi, temperature=self.weighting_temperature
            )
        self.fit_nominators(m, sample_weight=weights)
        self._n_users, self._n_items = n_users, n_items
        return self

    def fit_nominators(self, user_items, sample_weight=None) -> None:
        """(Re)fit every nominator on its pool's columns (pools and features must be set).

        Args:
            user_items: sparse ``(n_users, n_items)`` interactions.
            sample_weight: optional sparse ``(n_users, n_items)`` weights of the pairs.

        Raises:
            ValueError: if a pool is empty.
        """
        m = check_user_items(user_items)
        by_column = m.tocsc()  # column slices of CSC are cheap; CSR would copy per row
        w_cols = None if sample_weight is None else sp.csc_matrix(sample_weight)
        for j, nom in enumerate(self.nominators):
            cols = self._pool_items(j)
            if cols.size == 0:
                raise ValueError(f"pool {j} is empty; every nominator needs at least one item")
            nom.fit(
                by_column[:, cols].tocsr(),
                user_features=self.user_features,
                item_features=self.item_features[cols],
                sample_weight=None if w_cols is None else w_cols[:, cols].tocsr(),
            )

    def _pool_items(self, j: int) -> np.ndarray:
        return np.flatnonzero(self.pools == j)

    def _check_fitted(self):
        if self.pools is None or self.user_features is None:
            raise RuntimeError("TwoStageRecommender is not fitted; call fit or load first")

    def candidates(self, userids, user_items, filter_already_liked_items: bool = True):
        """The union of every nominator's top-k (global ids, ``-1`` for empty slots).

        Args:
            userids: int or ``(n,)`` user ids.
            user_items: sparse ``(n, n_items)`` rows of those users.
            filter_already_liked_items: nominators skip liked items.

        Returns:
            ``(n, n_pools * k)`` int64 global item ids.
        """
        self._check_fitted()
        ids, _ = check_userids(userids, self.user_features.shape[0])
        rows = self._check_rows(user_items, len(ids))
        k = self.candidates_per_nominator
        out = np.empty((len(ids), self.n_pools * k), dtype=np.int64)
        for j, nom in enumerate(self.nominators):
            cols = self._pool_items(j)
            local, _ = nom.nominate(
                ids,
                rows[:, cols],
                k,
                user_features=self.user_features,
                filter_already_liked_items=filter_already_liked_items,
            )
            out[:, j * k : (j + 1) * k] = np.where(local >= 0, cols[np.maximum(local, 0)], -1)
        return out

    def _check_rows(self, user_items, n):
        rows = check_user_items(user_items)
        if rows.shape != (n, self.item_features.shape[0]):
            raise ValueError(
                f"user_items must hold one row per requested user: expected shape "
                f"({n}, {self.item_features.shape[0]}), got {rows.shape}"
            )
        return rows

    def recommend(
        self,
        userid,
        user_items,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items=None,
        recalculate_user: bool = False,
        items=None,
        batch_size: int = 256,
        fused: bool = True,
    ):
        """Top-``N`` items per user: nominate, take the union, re-rank with the ranker.

        Arguments and return shapes follow implicit 0.7's ``recommend``.

        Args:
            userid: int or ``(n,)`` int array of user ids.
            user_items: sparse ``(n, n_items)`` CSR matrix, row ``r`` for ``userid[r]``
                (used for filtering and, with ``recalculate_user``, as the users' data).
            N: number of items to return (at most ``len(items)`` when ``items`` is given).
            filter_already_liked_items: never return items with a nonzero in ``user_items``.
            filter_items: item ids never returned to any user of the call.
            recalculate_user: represent each user by ``user_items`` alone, as implicit
                does: nominators recompute their user factors from the row (ALS) or from
                SVD features folded in from the row (JAX nominators), and the ranker uses
                the folded-in features without its per-user id embedding. Ids need not be
                known to the model.
            items: rank only these item ids (each nominator nominates from its pool's
                share of them); cannot be combined with ``filter_items``.
            batch_size: users per step of the ranker's compiled loop.
            fused: score the pools from the nominators' embeddings (every nominator here
                is a dot-product model; the default); False calls each nominator's own
                ``nominate`` (implicit's ``recommend`` for ALS/BPR) and supports no
                ``filter_items``, ``items`` or ``recalculate_user``.

        Returns:
            ``(ids, scores)`` of shape ``(n, N)`` (``(N,)`` for a scalar ``userid``); slots
            with no candidate hold id ``-1`` and score ``-inf``.

        Raises:
            IndexError: for unknown user ids (without ``recalculate_user``) or item ids.
            ValueError: for a ``user_items`` of the wrong shape, ``N < 1``, or both
                ``items`` and ``filter_items``.
        """
        self._check_fitted()
        if N < 1:
            raise ValueError(f"N must be >= 1; got {N}")
        n_users, n_items = self.user_features.shape[0], self.item_features.shape[0]
        ids, scalar = check_userids(userid, np.iinfo(np.int64).max if recalculate_user else n_users)
        rows = self._check_rows(user_items, len(ids))
        blocked = self._blocked_items(filter_items, items, n_items)
        if items is not None:
            N = min(N, len(np.unique(np.asarray(items))))
        fused = fused and all(
            nom.embeddings(np.zeros(1, np.int64), user_features=self.user_features) is not None
            for nom in self.nominators
        )
        if fused:
            out_ids, out_sc = self._serve(
                ids, rows, N, filter_already_liked_items, blocked, recalculate_user, batch_size
            )
        elif blocked is not None or recalculate_user:
            raise ValueError(
                "fused=False supports neither filter_items, items nor recalculate_user"
            )
        else:
            cand = self.candidates(ids, rows, filter_already_liked_items)
            out_ids, out_sc = rank_union(
                cand, self.ranker.params, self.user_features, ids, self.item_features, N
            )
        if scalar:
            return out_ids[0], out_sc[0]
        return out_ids, out_sc

    @staticmethod
    def _blocked_items(filter_items, items, n_items):
        """Global item ids no user of the call may receive (None if there are none)."""
        if items is not None and filter_items is not None:
            raise ValueError("Can't set both items and filter_items in recommend call")
        given = filter_items if items is None else items
        if given is None:
            return None
        given = np.unique(np.asarray(given, dtype=np.int64))
        if given.size and (given.min() < 0 or given.max() >= n_items):
            name = "filter_items" if items is None else "items"
            raise IndexError(f"{name} holds item ids outside 0..{n_items - 1}")
        if items is None:
            return given
        return np.setdiff1d(np.arange(n_items), given)

    def _serve(self, ids, rows, n_out, filter_liked, blocked, recalculate, batch_size):
        n = len(ids)
        params = self.ranker.params
        if recalculate:
            user_table = self._fold_in_users(rows)
            user_idx = np.arange(n)
            params = {**params, "P": np.zeros((n, params["P"].shape[1]), np.float32)}
        else:
            user_table, user_idx = self.user_features, ids
        by_column = rows.tocsc() if recalculate else None
        user_vecs, item_vecs, pool_items = [], [], []
        for j, nom in enumerate(self.nominators):
            cols = self._pool_items(j)
            u, v = nom.embeddings(user_idx if not recalculate else [0], user_features=user_table)
            if recalculate:
                pool_rows = by_column[:, cols].tocsr()
                u = nom.recalculate_user(user_idx, pool_rows, user_features=user_table)
            user_vecs.append(u)
            item_vecs.append(v)
            pool_items.append(cols)
        blocked_all = None
        if blocked is not None:
            blocked_all = np.zeros(self.item_features.shape[0], bool)
            blocked_all[blocked] = True
        return serve(
            user_vecs,
            item_vecs,
            pool_items,
            rows if filter_liked else None,
            blocked_all,
            params,
            user_table,
            user_idx,
            self.item_features,
            k=self.candidates_per_nominator,
            n_out=n_out,
            block=batch_size,
        )

    def _ranker_embeddings(self):
        p = self.ranker.params
        eu = np.asarray(p["P"]) + self.user_features @ np.asarray(p["Au"])
        ei = np.asarray(p["Q"]) + self.item_features @ np.asarray(p["Ai"])
        return eu, ei

    def similar_items(
        self, itemid, N=10, recalculate_item=False, item_users=None, filter_items=None, items=None
    ):
        """Most similar items by cosine of the ranker's item embeddings (implicit's
        ``similar_items``: the item itself comes first with similarity 1).

        Args:
            itemid: int or ``(b,)`` item ids.
            N: results per item.
            recalculate_item: not supported (raises ``NotImplementedError``, as implicit
                models without it do).
            item_users: unused (implicit's name, for ``recalculate_item``).
            filter_items: item ids never returned.
            items: rank only these ids; cannot be combined with ``filter_items``.

        Returns:
            ``(ids, scores)`` of shape ``(N,)`` or ``(b, N)``.

        Raises:
            NotImplementedError: for ``recalculate_item=True``.
            ValueError: when both ``items`` and ``filter_items`` are given.
            IndexError: for unknown item ids.
        """
        self._check_fitted()
        if recalculate_item:
            raise NotImplementedError("recalculate_item is not supported with this model")
        if items is not None and filter_items is not None:
            raise ValueError("Can't set both items and filter_items in similar_items call")
        _, ei = self._ranker_embeddings()
        q = ei[_check_ids(itemid, ei.shape[0], "itemid")]
        if items is not None:
            _check_ids(items, ei.shape[0], "items")
        return cosine_topk(ei, q, N, filter_items, items)

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """Most similar users by cosine of the ranker's user embeddings (implicit's
        ``similar_users``).

        Args:
            userid: int or ``(b,)`` user ids.
            N: results per user.
            filter_users: user ids never returned.
            users: rank only these ids; cannot be combined with ``filter_users``.

        Returns:
            ``(ids, scores)`` of shape ``(N,)`` or ``(b, N)``.

        Raises:
            ValueError: when both ``users`` and ``filter_users`` are given.
            IndexError: for unknown user ids.
        """
        self._check_fitted()
        if users is not None and filter_users is not None:
            raise ValueError("Can't set both users and filter_users in similar_users call")
        eu, _ = self._ranker_embeddings()
        q = eu[_check_ids(userid, eu.shape[0], "userid")]
        if users is not None:
            _check_ids(users, eu.shape[0], "users")
        return cosine_topk(eu, q, N, filter_users, users)

    def save(self, path) -> None:
        """Write the fitted model to one ``.npz`` file, atomically (temp file + rename).

        Args:
            path: destination file.

        Raises:
            RuntimeError: if not fitted.
        """
        from widelab_core.command import atomic_write

        self._check_fitted()
        arrays: dict[str, np.ndarray] = {
            "pools": self.pools,
            "user_features": self.user_features,
            "item_features": self.item_features,
        }
        for name in ("fold_in", "item_fold_in", "user_weight"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        nom_configs = []
        for j, nom in enumerate(self.nominators):
            cfg, arr = nom.state()
            nom_configs.append(cfg)
            arrays.update({f"nominator{j}/{k}": v for k, v in arr.items()})
        if self.ranker.params is None:
            raise RuntimeError("the ranker is not fitted; nothing to save")
        arrays.update({f"ranker/{k}": v for k, v in self.ranker.params.items()})
        meta = {
            "format": "widelab-recsys-two-stage/1",
            "allocation": self.allocation,
            "candidates_per_nominator": self.candidates_per_nominator,
            "feature_dim": self.feature_dim,
            "seed": self.seed,
            "nominator_weighting": self.nominator_weighting,
            "weighting_temperature": self.weighting_temperature,
            "nominators": nom_configs,
            "ranker": self.ranker.config(),
        }
        arrays["meta"] = np.array(json.dumps(meta))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path) -> TwoStageRecommender:
        """Read a model written by :meth:`save`.

        Args:
            path: the ``.npz`` file.

        Returns:
            The fitted :class:`TwoStageRecommender`.

        Raises:
            FileNotFoundError: if the file is missing.
            ValueError: if the file is not a saved two-stage recommender.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except Exception as e:
            raise ValueError(f"{path}: not a readable .npz file ({e})") from e
        try:
            meta = json.loads(str(data["meta"]))
        except (KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: missing or malformed 'meta' entry") from e
        if meta.get("format") != "widelab-recsys-two-stage/1":
            raise ValueError(f"{path}: unknown format {meta.get('format')!r}")
        noms = []
        for j, cfg in enumerate(meta["nominators"]):
            prefix = f"nominator{j}/"
            arr = {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}
            noms.append(nominator_from_state(cfg, arr))
        ranker = MLPRanker(**meta["ranker"])
        ranker.params = {k[7:]: v for k, v in data.items() if k.startswith("ranker/")}
        rec = cls(
            nominators=noms,
            ranker=ranker,
            allocation=meta["allocation"],
            candidates_per_nominator=meta["candidates_per_nominator"],
            feature_dim=meta["feature_dim"],
            seed=meta["seed"],
            nominator_weighting=meta.get("nominator_weighting", "independent"),
            weighting_temperature=meta.get("weighting_temperature", 1.0),
        )
        rec.pools = data["pools"]
        rec.user_features = data["user_features"]
        rec.item_features = data["item_features"]
        rec.fold_in = data.get("fold_in")
        rec.item_fold_in = data.get("item_fold_in")
        rec.user_weight = data.get("user_weight")
        return rec


def _check_ids(ids, n, name):
    arr = np.asarray(ids)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer ids; got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise IndexError(f"{name} holds ids outside 0..{n - 1}")
    return arr


def recommend_all(model, user_items, N: int = 10, filter_already_liked_items: bool = True):
    """Recommendations for every row of ``user_items`` (convenience for evaluation).

    Args:
        model: anything with implicit's ``recommend(userids, user_items, N, ...)``.
        user_items: sparse ``(n_users, n_items)``.
        N: cut-off.
        filter_already_liked_items: passed through.

    Returns:
        ``(n_users, N)`` item ids.
    """
    m = sp.csr_matrix(user_items)
    ids, _ = model.recommend(
        np.arange(m.shape[0]), m, N=N, filter_already_liked_items=filter_already_liked_items
    )
    return np.asarray(ids)
