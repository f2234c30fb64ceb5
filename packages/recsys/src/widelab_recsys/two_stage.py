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
import functools
import io
import json
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ._validate import check_features, check_user_items, check_userids
from .features import svd_features
from .nominators import ALSNominator, Nominator, nominator_from_state, topk_filtered
from .pools import kmeans_pools, learn_pools, random_pools
from .ranker import MLPRanker, score_candidates

__all__ = ["TwoStageRecommender"]

_ALLOCATIONS = ("random", "kmeans", "learned")


@dataclasses.dataclass
class TwoStageRecommender:
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
    pools: np.ndarray | None = dataclasses.field(default=None, repr=False)
    user_features: np.ndarray | None = dataclasses.field(default=None, repr=False)
    item_features: np.ndarray | None = dataclasses.field(default=None, repr=False)

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
        self.fit_nominators(m)
        self.ranker.fit(m, fu, gi)
        self._n_users, self._n_items = n_users, n_items
        return self

    def fit_nominators(self, user_items) -> None:
        """(Re)fit every nominator on its pool's columns (pools and features must be set).

        Args:
            user_items: sparse ``(n_users, n_items)`` interactions.

        Raises:
            ValueError: if a pool is empty.
        """
        m = check_user_items(user_items)
        by_column = m.tocsc()  # column slices of CSC are cheap; CSR would copy per row
        for j, nom in enumerate(self.nominators):
            cols = self._pool_items(j)
            if cols.size == 0:
                raise ValueError(f"pool {j} is empty; every nominator needs at least one item")
            nom.fit(
                by_column[:, cols].tocsr(),
                user_features=self.user_features,
                item_features=self.item_features[cols],
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
        userids,
        user_items,
        N: int = 10,
        filter_already_liked_items: bool = True,
        batch_size: int = 256,
        fused: bool = True,
    ):
        """Top-``N`` items per user: nominate, take the union, re-rank with the ranker.

        Args:
            userids: int or ``(n,)`` int array of user ids.
            user_items: sparse ``(n, n_items)`` matrix, row ``r`` for ``userids[r]``
                (implicit's convention; used for filtering).
            N: number of items to return.
            filter_already_liked_items: never return items with a nonzero in ``user_items``.
            batch_size: users per batch (small batches keep the ranker's gathered
                candidate features in cache).
            fused: score every pool from the nominators' embeddings in compiled calls (all
                nominators here are dot-product models) and rank in one more; False
                goes through each nominator's own ``nominate`` (implicit's ``recommend`` for
                ALS/BPR). Both give the same items up to ties.

        Returns:
            ``(ids, scores)`` of shape ``(n, N)`` (``(N,)`` for a scalar userid); slots with
            no candidate hold id ``-1`` and score ``-inf``.

        Raises:
            IndexError: for unknown user ids.
            ValueError: for a ``user_items`` of the wrong shape or ``N < 1``.
        """
        self._check_fitted()
        if N < 1:
            raise ValueError(f"N must be >= 1; got {N}")
        ids, scalar = check_userids(userids, self.user_features.shape[0])
        rows = self._check_rows(user_items, len(ids))
        out_ids = np.empty((len(ids), N), dtype=np.int64)
        out_sc = np.empty((len(ids), N), dtype=np.float32)
        if fused and all(
            nom.embeddings(ids[:1], user_features=self.user_features) is not None
            for nom in self.nominators
        ):
            self._recommend_fused(
                ids, rows, N, filter_already_liked_items, batch_size, out_ids, out_sc
            )
            if scalar:
                return out_ids[0], out_sc[0]
            return out_ids, out_sc
        for start in range(0, len(ids), batch_size):
            sl = slice(start, start + batch_size)
            cand = self.candidates(ids[sl], rows[sl], filter_already_liked_items)
            sc = self.ranker.score(ids[sl], cand, self.user_features, self.item_features)
            order, top = topk_filtered(sc, None, N, filter_already_liked_items=False)
            out_ids[sl] = np.where(
                order >= 0, np.take_along_axis(cand, np.maximum(order, 0), 1), -1
            )
            out_sc[sl] = top
        if scalar:
            return out_ids[0], out_sc[0]
        return out_ids, out_sc

    def _recommend_fused(self, ids, rows, n_out, filter_liked, batch_size, out_ids, out_sc):
        k = self.candidates_per_nominator
        cols = tuple(jnp.asarray(self._pool_items(j), jnp.int32) for j in range(self.n_pools))
        item_vecs = tuple(
            jnp.asarray(nom.embeddings(ids[:1], user_features=self.user_features)[1])
            for nom in self.nominators
        )
        fu = jnp.asarray(self.user_features)
        gi = jnp.asarray(self.item_features)
        params = self.ranker.params
        bs = min(batch_size, len(ids))
        n_items = self.item_features.shape[0]
        for start in range(0, len(ids), bs):
            batch = ids[start : start + bs]
            n = len(batch)
            padded = np.resize(batch, bs)  # fixed batch shape: one compilation
            liked = np.zeros((bs, n_items), dtype=bool)
            if filter_liked:
                sub = rows[start : start + n]
                r = np.repeat(np.arange(n), np.diff(sub.indptr))
                liked[r, sub.indices] = True
            cand = np.empty((bs, self.n_pools * k), dtype=np.int64)
            liked_j = jnp.asarray(liked)
            for j, nom in enumerate(self.nominators):
                u = jnp.asarray(nom.embeddings(padded, user_features=self.user_features)[0])
                s = np.asarray(_pool_scores(u, item_vecs[j], cols[j], liked_j))
                # top-k on the host: NumPy's argpartition beats XLA's CPU TopK here
                local, _ = topk_filtered(s, None, k, filter_already_liked_items=False)
                c = np.asarray(cols[j])
                cand[:, j * k : (j + 1) * k] = np.where(local >= 0, c[np.maximum(local, 0)], -1)
            top_ids, top_sc = _rank(
                jnp.asarray(cand), params, fu, jnp.asarray(padded, jnp.int32), gi, n_out=n_out
            )
            out_ids[start : start + n] = np.asarray(top_ids)[:n]
            out_sc[start : start + n] = np.asarray(top_sc)[:n]

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
        )
        rec.pools = data["pools"]
        rec.user_features = data["user_features"]
        rec.item_features = data["item_features"]
        return rec


def _top_k(scores, k):
    """``lax.top_k`` padded with ``-inf`` when there are fewer than ``k`` columns."""
    kk = min(k, scores.shape[1])
    s, i = jax.lax.top_k(scores, kk)
    if kk < k:
        s = jnp.pad(s, ((0, 0), (0, k - kk)), constant_values=-jnp.inf)
        i = jnp.pad(i, ((0, 0), (0, k - kk)))
    return s, i


@jax.jit
def _pool_scores(u, v, cols, liked):
    """Nominator scores ``u vᵀ`` of one pool with liked items at ``-inf``."""
    return jnp.where(liked[:, cols], -jnp.inf, u @ v.T)


@functools.partial(jax.jit, static_argnames=("n_out",))
def _rank(cand, params, fu, users, gi, *, n_out):
    """Ranker scores of the candidate union and the top ``n_out``."""
    valid = cand >= 0
    sc = score_candidates(params, fu, users, jnp.maximum(cand, 0), gi)
    sc = jnp.where(valid, sc, -jnp.inf)
    top_s, top_i = _top_k(sc, n_out)
    top_ids = jnp.take_along_axis(cand, top_i, axis=1)
    return jnp.where(jnp.isfinite(top_s), top_ids, -1), top_s


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
