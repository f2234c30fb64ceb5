"""Matrix-factorisation nominators wrapping ``implicit``: ALS (Hu, Koren & Volinsky 2008)
and BPR (Rendle et al. 2009), each fitted on its pool's columns."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from widelab_core.validate import require_float, require_int

from ._validate import check_user_items, single_threaded_blas
from .nominator_base import Nominator

__all__ = ["ALSNominator", "BPRNominator"]


@dataclasses.dataclass
class _ImplicitNominator(Nominator):
    factors: int = 32
    regularization: float = 0.01
    iterations: int = 15
    random_state: int = 0
    model: Any = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        require_int(self.factors, "factors", min=1)
        require_int(self.iterations, "iterations", min=1)
        require_float(self.regularization, "regularization", min=0)

    def _make(self):
        raise NotImplementedError

    def fit(self, user_items, *, user_features=None, item_features=None, sample_weight=None):
        m = check_user_items(user_items)
        if sample_weight is not None:
            m = _weighted(m, sample_weight, type(self).__name__)
        with single_threaded_blas():
            self.model = self._make()
            self.model.fit(m, show_progress=False)
        return self

    def nominate(
        self, userids, user_items, k, *, user_features=None, filter_already_liked_items=True
    ):
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        userids = np.asarray(userids)
        n_pool = self.model.item_factors.shape[0]
        kk = min(k, n_pool)
        rows = sp.csr_matrix(user_items)
        with single_threaded_blas():
            ids, sc = self.model.recommend(
                userids, rows, N=kk, filter_already_liked_items=filter_already_liked_items
            )
        ids = np.asarray(ids, dtype=np.int64).reshape(len(userids), -1)
        sc = np.asarray(sc, dtype=np.float32).reshape(len(userids), -1)
        # implicit marks filtered items with -FLT_MAX rather than -inf.
        bad = (ids < 0) | ~np.isfinite(sc) | (sc <= -1e38)
        ids[bad] = -1
        sc[bad] = -np.inf
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            sc = np.pad(sc, ((0, 0), (0, pad)), constant_values=-np.inf)
        return ids, sc

    def embeddings(self, userids, *, user_features=None):
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        # BPR's factors carry a bias column (user side constant 1): the dot product holds.
        return (
            np.asarray(self.model.user_factors)[np.asarray(userids)],
            np.asarray(self.model.item_factors),
        )

    def _fitted(self):
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        return self.model

    def recommend(
        self,
        userid,
        user_items,
        N=10,
        filter_already_liked_items=True,
        filter_items=None,
        recalculate_user=False,
        items=None,
    ):
        """implicit's ``recommend`` on the pool (pool-local ids), BLAS single-threaded."""
        with single_threaded_blas():
            return self._fitted().recommend(
                userid,
                user_items,
                N=N,
                filter_already_liked_items=filter_already_liked_items,
                filter_items=filter_items,
                recalculate_user=recalculate_user,
                items=items,
            )

    def similar_items(
        self, itemid, N=10, recalculate_item=False, item_users=None, filter_items=None, items=None
    ):
        """implicit's ``similar_items`` (cosine on item factors, pool-local ids)."""
        with single_threaded_blas():
            return self._fitted().similar_items(
                itemid, N, recalculate_item, item_users, filter_items, items
            )

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """implicit's ``similar_users`` (cosine on user factors)."""
        with single_threaded_blas():
            return self._fitted().similar_users(userid, N, filter_users, users)

    def recalculate_user(self, userid, user_items, *, user_features=None):
        with single_threaded_blas():
            return np.atleast_2d(self._fitted().recalculate_user(userid, sp.csr_matrix(user_items)))

    def partial_fit_users(self, userids, user_items, *, user_features=None):
        with single_threaded_blas():
            self._fitted().partial_fit_users(np.asarray(userids), sp.csr_matrix(user_items))

    def partial_fit_items(self, itemids, item_users, *, item_features=None, user_features=None):
        """implicit's ``partial_fit_items``: (re)fit pool items from their ``(items, users)``
        rows; new ids extend the pool (``item_features``, ``user_features`` unused)."""
        with single_threaded_blas():
            self._fitted().partial_fit_items(np.asarray(itemids), sp.csr_matrix(item_users))

    def _config(self):
        return {
            "kind": self.kind,
            "factors": self.factors,
            "regularization": self.regularization,
            "iterations": self.iterations,
            "random_state": self.random_state,
        }

    def state(self):
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        arrays = {
            "user_factors": np.asarray(self.model.user_factors),
            "item_factors": np.asarray(self.model.item_factors),
        }
        return self._config(), arrays

    def _restore(self, arrays):
        with single_threaded_blas():
            self.model = self._make()
        self.model.user_factors = np.ascontiguousarray(arrays["user_factors"])
        self.model.item_factors = np.ascontiguousarray(arrays["item_factors"])
        return self


def _weighted(m, sample_weight, name):
    """Interactions times their weights (ALS: confidence ``c_ui = alpha w_ui r_ui``)."""
    if name == "BPRNominator":
        raise ValueError(
            "BPRNominator cannot use sample_weight: implicit's BPR reads only which "
            "entries are nonzero"
        )
    w = sp.csr_matrix(sample_weight)
    if w.shape != m.shape:
        raise ValueError(f"sample_weight must have shape {m.shape}; got {w.shape}")
    if w.nnz and (not np.isfinite(w.data).all() or w.data.min() < 0):
        raise ValueError("sample_weight must hold finite non-negative weights")
    out = sp.csr_matrix(m.multiply(w), dtype=np.float32)
    out.eliminate_zeros()
    return out


@dataclasses.dataclass
class ALSNominator(_ImplicitNominator):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008, eq. 3) via ``implicit``, on one pool.

    Minimises ``Σ_ui c_ui (p_ui - x_u·y_i)² + λ(Σ|x_u|² + Σ|y_i|²)`` with
    ``c_ui = 1 + alpha r_ui`` over the pool's columns only.

    Args:
        factors: latent dimension.
        regularization: λ.
        iterations: ALS sweeps.
        alpha: confidence scale.
        random_state: seed of the factor initialisation.

    Example:
        >>> import scipy.sparse as sp
        >>> m = sp.random(20, 8, density=0.3, format="csr", random_state=0)
        >>> nom = ALSNominator(factors=2, iterations=2).fit(m)
        >>> nom.nominate([0, 1], m[[0, 1]], 3)[0].shape
        (2, 3)
    """

    kind: ClassVar[str] = "als"
    supports_partial_fit_items: ClassVar[bool] = True
    alpha: float = 1.0

    def _make(self):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
        )

    def _config(self):
        return {**super()._config(), "alpha": self.alpha}


@dataclasses.dataclass
class BPRNominator(_ImplicitNominator):
    """Bayesian personalised ranking (Rendle et al. 2009, eq. 5) via ``implicit``, on one pool.

    Maximises ``Σ_(u,i,j) ln σ(x_ui - x_uj) - λ|Θ|²`` by SGD over sampled triples.

    Args:
        factors: latent dimension.
        learning_rate: SGD step.
        regularization: λ.
        iterations: epochs.
        random_state: seed.
    """

    kind: ClassVar[str] = "bpr"
    learning_rate: float = 0.01
    iterations: int = 100

    def _make(self):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.random_state,
        )

    def recalculate_user(self, userid, user_items, *, user_features=None):
        raise NotImplementedError(
            "BPRNominator does not support recalculate_user (nor does implicit's BPR)"
        )

    def partial_fit_users(self, userids, user_items, *, user_features=None):
        raise NotImplementedError(
            "BPRNominator does not support partial_fit_users (nor does implicit's BPR)"
        )

    def partial_fit_items(self, itemids, item_users, *, item_features=None, user_features=None):
        raise NotImplementedError(
            "BPRNominator does not support partial_fit_items (nor does implicit's BPR)"
        )

    def _config(self):
        return {**super()._config(), "learning_rate": self.learning_rate}
