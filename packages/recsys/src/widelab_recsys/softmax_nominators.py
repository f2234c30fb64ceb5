"""Low-capacity JAX softmax nominators (linear, two-tower).

They are trained on the multinomial likelihood of each user's items (Liang et al. 2018,
eq. 2), ``L = -Σ_u Σ_i y_ui log softmax_i(s(u, ·)) / Σ_ui y_ui`` over the users of a batch
(heavy users weigh more, as in the count data). With ``sample_weight`` the targets
``y_ui`` become ``w_ui y_ui`` (importance-weighted training, :mod:`.weighting`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse as sp
from widelab_core.validate import require_float, require_int

from ._validate import check_features, check_user_items
from .nominator_base import Nominator, topk_filtered
from .softmax_items import grow_items, item_step

__all__ = ["LinearNominator", "TwoTowerNominator"]


def _glorot(key: np.random.Generator, shape):
    return _normal(key, shape) * np.float32(np.sqrt(2.0 / (shape[0] + shape[-1])))


def _normal(rng: np.random.Generator, shape) -> np.ndarray:
    """Host-side initialisation (no per-shape XLA compilation)."""
    return rng.standard_normal(shape).astype(np.float32)


@dataclasses.dataclass
class _JaxNominator(Nominator):
    rank: int = 4
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 0.02
    l2: float = 1e-4
    seed: int = 0
    params: dict | None = dataclasses.field(default=None, repr=False)
    item_features: np.ndarray | None = dataclasses.field(default=None, repr=False)
    n_items: int = dataclasses.field(default=0, repr=False)
    user_activity: np.ndarray | None = dataclasses.field(default=None, repr=False)

    supports_partial_fit_items: ClassVar[bool] = True
    #: item axis of each item-indexed parameter (those the item step refits)
    item_axes: ClassVar[dict] = {}

    def __post_init__(self):
        require_int(self.rank, "rank", min=0)
        require_int(self.epochs, "epochs", min=1)
        require_int(self.batch_size, "batch_size", min=1)
        require_float(self.learning_rate, "learning_rate", min=0, min_open=True)
        require_float(self.l2, "l2", min=0)

    def init_params(self, rng, f_dim: int, g_dim: int, n_items: int) -> dict:
        raise NotImplementedError

    @staticmethod
    def score(params: dict, fu, gi):
        """Scores ``(batch, n_pool)`` for user features ``fu`` and item features ``gi``."""
        raise NotImplementedError

    def fit(self, user_items, *, user_features=None, item_features=None, sample_weight=None):
        m = check_user_items(user_items)
        n_users, n_items = m.shape
        if user_features is None or item_features is None:
            raise ValueError(f"{type(self).__name__}.fit needs user_features and item_features")
        fu_all = check_features(user_features, n_users, "user_features")
        gi_np = check_features(item_features, n_items, "item_features")
        # Pad the pool to a multiple of _PAD items (padded logits are masked) so pools of
        # similar size share one compiled training step.
        n_pad = -(-n_items // _PAD) * _PAD
        self.item_features = np.pad(gi_np, ((0, n_pad - n_items), (0, 0)))
        self.n_items = n_items
        gi = jnp.asarray(self.item_features)
        params = self.init_params(
            np.random.default_rng(self.seed), fu_all.shape[1], gi.shape[1], n_pad
        )
        step = _train_step(type(self).score)
        opt_state = optax.adam(self.learning_rate).init(params)
        lr, l2 = jnp.float32(self.learning_rate), jnp.float32(self.l2)
        rng = np.random.default_rng(self.seed)
        bs = min(self.batch_size, n_users)
        n_batches = -(-n_users // bs)
        binary = m.copy()
        binary.data[:] = 1.0
        if sample_weight is not None:
            w = sp.csr_matrix(sample_weight)
            if w.shape != m.shape:
                raise ValueError(f"sample_weight must have shape {m.shape}; got {w.shape}")
            if w.nnz and (not np.isfinite(w.data).all() or w.data.min() < 0):
                raise ValueError("sample_weight must hold finite non-negative weights")
            binary = sp.csr_matrix(binary.multiply(w), dtype=np.float32)
        self.user_activity = np.asarray(binary.sum(axis=1), np.float32).ravel()
        for _ in range(self.epochs):
            order = np.resize(rng.permutation(n_users), n_batches * bs)
            for b in range(n_batches):
                rows = order[b * bs : (b + 1) * bs]
                y = np.zeros((bs, n_pad), np.float32)
                y[:, :n_items] = binary[rows].toarray()
                params, opt_state, _ = step(
                    params,
                    opt_state,
                    jnp.asarray(fu_all[rows]),
                    gi,
                    jnp.asarray(y),
                    n_items,
                    lr,
                    l2,
                )
        self.params = jax.tree.map(np.asarray, params)
        return self

    def nominate(
        self, userids, user_items, k, *, user_features=None, filter_already_liked_items=True
    ):
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        if user_features is None:
            raise ValueError(f"{type(self).__name__}.nominate needs user_features")
        fu = np.asarray(user_features, dtype=np.float32)[np.asarray(userids)]
        s = np.asarray(_jit_score(type(self).score)(self.params, fu, self.item_features))
        return topk_filtered(s[:, : self.n_items], user_items, k, filter_already_liked_items)

    def embeddings(self, userids, *, user_features=None):
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        if user_features is None:
            raise ValueError(f"{type(self).__name__}.embeddings needs user_features")
        fu = np.asarray(user_features, dtype=np.float32)[np.asarray(userids)]
        eu, ei = _jit_embed(type(self).embed)(self.params, fu, self.item_features)
        p = self.params
        n = self.n_items
        u = np.hstack([np.asarray(eu), np.ones((len(fu), 1), np.float32)])
        b = np.asarray(p["b"])[:n, None] if "b" in p else np.zeros((n, 1), np.float32)
        v = np.hstack([np.asarray(ei)[:n], b])
        return u, v

    def recalculate_user(self, userid, user_items, *, user_features=None):
        if user_features is None:
            raise ValueError(f"{type(self).__name__}.recalculate_user needs user_features")
        n = np.asarray(user_features).shape[0]
        return self.embeddings(np.arange(n), user_features=user_features)[0]

    def partial_fit_users(self, userids, user_items, *, user_features=None):
        """Nothing to fit: the user side is a function of the user's features."""

    def partial_fit_items(
        self, itemids, item_users, *, item_features=None, user_features=None, iterations=100
    ):
        """Refit (or add) pool items from their ``(items, users)`` rows, all else fixed.

        The item-indexed parameters of ``itemids`` minimise the training objective with
        every other parameter held (:mod:`.softmax_items`; L-BFGS, ``iterations`` steps).
        New ids must extend the pool contiguously from ``n_items``.

        Args:
            itemids: pool-local item ids (known ids are refitted).
            item_users: sparse ``(len(itemids), n_users)`` interactions of those items.
            item_features: ``(len(itemids), G)`` their features (required for new ids).
            user_features: ``(n_users, F)`` user features, as at ``fit`` (users added
                since count only through these rows).
            iterations: L-BFGS steps.

        Raises:
            RuntimeError: before ``fit``.
            ValueError: for bad ids, shapes or missing features.
        """
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        if self.user_activity is None:
            raise ValueError(f"{type(self).__name__} was saved without user activity; refit it")
        if user_features is None:
            raise ValueError(f"{type(self).__name__}.partial_fit_items needs user_features")
        require_int(iterations, "iterations", min=1)
        ids = np.asarray(itemids, np.int64).ravel()
        if ids.size == 0 or ids.min() < 0 or np.unique(ids).size != ids.size:
            raise ValueError(f"itemids must be distinct non-negative ids; got {ids.tolist()}")
        n_old = self.n_items
        is_new = ids >= n_old
        new = np.sort(ids[is_new])
        if not np.array_equal(new, np.arange(n_old, n_old + new.size)):
            raise ValueError(
                f"new itemids must extend the pool contiguously from {n_old}; got {new.tolist()}"
            )
        fu = check_features(user_features, np.asarray(user_features).shape[0], "user_features")
        cols = check_user_items(item_users)
        if cols.shape != (ids.size, fu.shape[0]):
            raise ValueError(
                f"item_users must have shape ({ids.size}, {fu.shape[0]}) (items, users); "
                f"got {cols.shape}"
            )
        if new.size and item_features is None:
            raise ValueError("item_features are required for new items")
        g_dim = self.item_features.shape[1]
        g = np.zeros((ids.size, g_dim), np.float32)
        if item_features is not None:
            g = check_features(item_features, ids.size, "item_features")
            if g.shape[1] != g_dim:
                raise ValueError(f"item_features must have {g_dim} columns; got {g.shape[1]}")
        n_all = n_old + new.size
        axes = {k: a for k, a in self.item_axes.items() if k in self.params}
        params, gi = grow_items(
            self.params, axes, self.item_features, n_all, -(-n_all // _PAD) * _PAD,
            g[is_new][np.argsort(ids[is_new])],
        )  # fmt: skip
        y = cols.T.toarray().astype(np.float32)  # (n_users, len(ids))
        y[y != 0] = 1.0
        activity = np.zeros(fu.shape[0], np.float32)
        n_fit = min(fu.shape[0], self.user_activity.size)
        activity[:n_fit] = self.user_activity[:n_fit]
        activity += y[:, is_new].sum(axis=1)
        solve = item_step(type(self).score, axes, iterations)
        free = solve(
            jax.tree.map(jnp.asarray, params),
            jnp.asarray(ids),
            jnp.asarray(fu),
            jnp.asarray(gi),
            jnp.asarray(y),
            jnp.asarray(activity),
            n_all,
            jnp.float32(self.l2),
        )
        for k, a in axes.items():
            params[k] = params[k].copy()
            params[k][(slice(None),) * a + (ids,)] = np.asarray(free[k])
        self.params, self.item_features, self.n_items = params, gi, n_all
        self.user_activity = activity

    def _config(self):
        return {
            "kind": self.kind,
            "rank": self.rank,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "seed": self.seed,
        }

    def state(self):
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        extra = {} if self.user_activity is None else {"user_activity": self.user_activity}
        return self._config(), {
            **self.params,
            "item_features": self.item_features,
            "n_items": np.asarray(self.n_items),
            **extra,
        }

    def _restore(self, arrays):
        arrays = dict(arrays)
        self.item_features = np.asarray(arrays.pop("item_features"))
        self.n_items = int(arrays.pop("n_items"))
        activity = arrays.pop("user_activity", None)
        self.user_activity = None if activity is None else np.asarray(activity)
        self.params = {k: np.asarray(v) for k, v in arrays.items()}
        return self


_JIT_CACHE: dict = {}
_PAD = 64


def _jit_embed(fn):
    key = ("embed", fn)
    if key not in _JIT_CACHE:
        _JIT_CACHE[key] = jax.jit(fn)
    return _JIT_CACHE[key]


def _train_step(score):
    """A jitted Adam step on the multinomial likelihood, cached per model class.

    The learning rate and the weight decay are traced arguments (Adam's state does not
    depend on them), so nominators with different settings share one compiled step and
    the cache holds at most one entry per model class.
    """
    cache_key = ("train", score)
    if cache_key not in _JIT_CACHE:

        @jax.jit
        def step(params, opt_state, fu, gi, y, n_valid, learning_rate, l2):
            def loss_fn(p):
                s = score(p, fu, gi)
                valid = (jnp.arange(s.shape[1]) < n_valid)[None, :]
                logp = jax.nn.log_softmax(jnp.where(valid, s, -1e30), axis=-1)
                logp = jnp.where(valid, logp, 0.0)
                nll = -(y * logp).sum() / jnp.maximum(y.sum(), 1.0)
                reg = sum(jnp.sum(v * v) for v in jax.tree.leaves(p))
                return nll + l2 * reg

            loss, g = jax.value_and_grad(loss_fn)(params)
            upd, opt_state = optax.adam(learning_rate).update(g, opt_state, params)
            return optax.apply_updates(params, upd), opt_state, loss

        _JIT_CACHE[cache_key] = step
    return _JIT_CACHE[cache_key]


def _jit_score(fn):
    if fn not in _JIT_CACHE:
        _JIT_CACHE[fn] = jax.jit(fn)
    return _JIT_CACHE[fn]


@dataclasses.dataclass
class LinearNominator(_JaxNominator):
    """Low-capacity linear softmax nominator: ``s(u, i) = (f_u A) · q_i + b_i``.

    The user's embedding is a linear map of its features ``f_u``; ``rank`` bounds the
    capacity (rank 0 is the popularity model ``s = b_i``; without the bias a rank-1 model
    orders its pool in one of only two ways). Trained on the multinomial likelihood of the
    module docstring with Adam (Kingma & Ba 2015).

    Args:
        rank: embedding dimension r.
        bias: include the item bias ``b_i``.
        epochs, batch_size, learning_rate, l2, seed: training settings.
    """

    kind: ClassVar[str] = "linear"
    item_axes: ClassVar[dict] = {"Q": 0, "b": 0}

    bias: bool = True

    def init_params(self, rng, f_dim, g_dim, n_items):
        params = {
            "A": _glorot(rng, (f_dim, self.rank)),
            "Q": np.float32(0.1) * _normal(rng, (n_items, self.rank)),
        }
        if self.bias:
            params["b"] = np.zeros((n_items,), np.float32)
        return params

    @staticmethod
    def embed(params, fu, gi):
        """User and item embeddings ``(f_u A, q_i)`` (the bias is separate)."""
        return fu @ params["A"], params["Q"]

    @staticmethod
    def score(params, fu, gi):
        s = (fu @ params["A"]) @ params["Q"].T
        return s + params["b"][None, :] if "b" in params else s

    def _config(self):
        return {**super()._config(), "bias": self.bias}


@dataclasses.dataclass
class TwoTowerNominator(_JaxNominator):
    """Two-tower nominator (Yi et al. 2019): ``s(u, i) = MLP_u(f_u) · MLP_i(g_i) + b_i``.

    Both towers are one-hidden-layer ReLU networks ending in ``rank`` dimensions, so item
    embeddings can be precomputed. Trained as :class:`LinearNominator`.

    Args:
        rank: output dimension of each tower.
        hidden: hidden width of each tower.
        epochs, batch_size, learning_rate, l2, seed: training settings.
    """

    kind: ClassVar[str] = "two_tower"
    item_axes: ClassVar[dict] = {"b": 0}
    hidden: int = 32

    def init_params(self, rng, f_dim, g_dim, n_items):
        h = self.hidden
        return {
            "Wu0": _glorot(rng, (f_dim, h)),
            "bu0": np.zeros((h,), np.float32),
            "Wu1": _glorot(rng, (h, self.rank)),
            "Wi0": _glorot(rng, (g_dim, h)),
            "bi0": np.zeros((h,), np.float32),
            "Wi1": _glorot(rng, (h, self.rank)),
            "b": np.zeros((n_items,), np.float32),
        }

    @staticmethod
    def embed(params, fu, gi):
        """Tower outputs ``(MLP_u(f_u), MLP_i(g_i))`` (the bias is separate)."""
        eu = jax.nn.relu(fu @ params["Wu0"] + params["bu0"][None, :]) @ params["Wu1"]
        ei = jax.nn.relu(gi @ params["Wi0"] + params["bi0"][None, :]) @ params["Wi1"]
        return eu, ei

    @staticmethod
    def score(params, fu, gi):
        eu, ei = TwoTowerNominator.embed(params, fu, gi)
        return eu @ ei.T + params["b"][None, :]

    def _config(self):
        return {**super()._config(), "hidden": self.hidden}
