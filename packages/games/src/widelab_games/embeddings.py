"""Recommenders fitted to rating data whose user embeddings induce an exposure game.

Hron et al. (2023), Section 3: the audit fits (i) non-negative matrix factorisation,
(ii) unconstrained (probabilistic) matrix factorisation of centred ratings and (iii) a
two-tower network, chooses the regularisation by cross-validation, and takes the demand
distribution to be the empirical distribution of the fitted user embeddings; the item
embeddings are the existing catalogue that the audit compares strategic content with.

Ratings come as a ``scipy.sparse`` ``(users, items)`` matrix whose stored entries are the
observed ratings.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse as sp

MODELS = ("nmf", "pmf", "two_tower")
TOWER_HIDDEN = 32


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """A fitted recommender's embeddings.

    Attributes:
        model: ``"nmf"``, ``"pmf"`` or ``"two_tower"``.
        users: ``(n_users, d)`` user embeddings (the demand's support).
        items: ``(n_items, d)`` item embeddings (the existing catalogue).
        reg: the regularisation strength used.
        val_rmse: validation RMSE of the chosen ``reg`` (NaN if not cross-validated).
        cv: ``{reg: mean validation RMSE}`` over the grid searched.
    """

    model: str
    users: np.ndarray
    items: np.ndarray
    reg: float
    val_rmse: float = float("nan")
    cv: dict = dataclasses.field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self.users.shape[1]


def check_ratings(ratings) -> sp.csr_matrix:
    """Validate a rating matrix: 2-D sparse (or dense, zeros = missing), finite, non-empty.

    Raises:
        ValueError: the matrix is empty or has non-finite ratings (with their position).
    """
    r = sp.csr_matrix(ratings, dtype=np.float64)
    if r.ndim != 2 or min(r.shape) == 0 or r.nnz == 0:
        raise ValueError(f"ratings must be a non-empty 2-D matrix; got shape {r.shape}")
    bad = ~np.isfinite(r.data)
    if bad.any():
        coo = r.tocoo()
        k = int(np.flatnonzero(~np.isfinite(coo.data))[0])
        raise ValueError(
            f"ratings has a non-finite value {coo.data[k]} at user {coo.row[k]}, item {coo.col[k]}"
        )
    return r


def _folds(r: sp.csr_matrix, n_folds: int, seed: int) -> np.ndarray:
    """A fold label for every stored rating (in COO order)."""
    return np.random.default_rng(seed).integers(0, n_folds, r.nnz)


# ----------------------------------------------------------------------------------------
# Models. Each returns (users, items, predict(rows, cols) -> ratings).


def _fit_nmf(r: sp.csr_matrix, dim: int, reg: float, seed: int, steps: int):
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    if (r.data < 0).any():
        raise ValueError("NMF needs non-negative ratings; found negative entries")
    model = NMF(
        n_components=dim,
        init="nndsvda",
        alpha_W=reg,
        alpha_H="same",
        l1_ratio=0.0,
        max_iter=steps,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        w = model.fit_transform(r)
    h = model.components_.T
    return w, h, lambda rows, cols: np.sum(w[rows] * h[cols], axis=1)


def _adam_scan(loss, params, data, reg, steps: int, lr: float):
    opt = optax.adam(lr)

    def step(carry, _):
        p, st = carry
        g = jax.grad(loss)(p, data, reg)
        upd, st = opt.update(g, st, p)
        return (optax.apply_updates(p, upd), st), None

    (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return p


def _pmf_loss(p, data, reg):
    """Negative log-posterior of PMF (Salakhutdinov & Mnih 2008, Eq. 4), per rating."""
    rows, cols, y, w = data
    pred = jnp.sum(p["u"][rows] * p["v"][cols], axis=1)
    nu, ni = p["u"].shape[0], p["v"].shape[0]
    return jnp.sum(w * (pred - y) ** 2) / jnp.sum(w) + reg * (
        jnp.sum(p["u"] ** 2) / nu + jnp.sum(p["v"] ** 2) / ni
    )


def _pmf_init(rng: np.random.Generator, shape, dim):
    return {
        "u": jnp.asarray(0.1 * rng.standard_normal((shape[0], dim)), jnp.float32),
        "v": jnp.asarray(0.1 * rng.standard_normal((shape[1], dim)), jnp.float32),
    }


@functools.partial(jax.jit, static_argnames=("steps",))
def _pmf_train(data, reg, params, *, steps):
    p = _adam_scan(_pmf_loss, params, data, reg, steps, 0.05)
    return p["u"], p["v"]


def _mlp_init(rng: np.random.Generator, sizes):
    return [
        (
            jnp.asarray(rng.standard_normal((a, b)) / np.sqrt(a), jnp.float32),
            jnp.zeros((b,), jnp.float32),
        )
        for a, b in zip(sizes[:-1], sizes[1:])
    ]


def _mlp(params, x):
    for i, (w, b) in enumerate(params):
        x = x @ w + b[None, :]
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x


def _towers(p):
    return _mlp(p["ut"], p["ue"]), _mlp(p["it"], p["ie"])


def _two_tower_loss(p, data, reg):
    rows, cols, y, w = data
    u, v = _towers(p)
    pred = jnp.sum(u[rows] * v[cols], axis=1)
    n = jnp.sum(w)
    l2 = sum(jnp.sum(a**2) for a, _ in p["ut"] + p["it"])
    emb = jnp.sum(p["ue"] ** 2) / p["ue"].shape[0] + jnp.sum(p["ie"] ** 2) / p["ie"].shape[0]
    return jnp.sum(w * (pred - y) ** 2) / n + reg * (emb + l2 / n)


def _two_tower_init(rng: np.random.Generator, shape, dim, hidden):
    return {
        "ue": jnp.asarray(0.1 * rng.standard_normal((shape[0], hidden)), jnp.float32),
        "ie": jnp.asarray(0.1 * rng.standard_normal((shape[1], hidden)), jnp.float32),
        "ut": _mlp_init(rng, [hidden, hidden, dim]),
        "it": _mlp_init(rng, [hidden, hidden, dim]),
    }


@functools.partial(jax.jit, static_argnames=("steps",))
def _two_tower_train(data, reg, params, *, steps):
    return _towers(_adam_scan(_two_tower_loss, params, data, reg, steps, 0.01))


def _fit_gradient_model(model):
    def fit(r: sp.csr_matrix, dim: int, reg: float, seed: int, steps: int, train_mask=None):
        coo = r.tocoo()
        w = np.ones(coo.nnz) if train_mask is None else train_mask.astype(np.float64)
        mean = float(np.sum(coo.data * w) / np.sum(w))
        data = (
            jnp.asarray(coo.row),
            jnp.asarray(coo.col),
            jnp.asarray(coo.data - mean, jnp.float32),
            jnp.asarray(w, jnp.float32),
        )
        rng = np.random.default_rng(seed)
        reg = jnp.asarray(reg, jnp.float32)
        if model == "pmf":
            u, v = _pmf_train(data, reg, _pmf_init(rng, r.shape, dim), steps=steps)
        else:
            init = _two_tower_init(rng, r.shape, dim, TOWER_HIDDEN)
            u, v = _two_tower_train(data, reg, init, steps=steps)
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        return u, v, lambda rr, cc: np.sum(u[rr] * v[cc], axis=1) + mean

    return fit


_FITTERS = {
    "nmf": _fit_nmf,
    "pmf": _fit_gradient_model("pmf"),
    "two_tower": _fit_gradient_model("two_tower"),
}
_DEFAULT_STEPS = {"nmf": 200, "pmf": 400, "two_tower": 400}
DEFAULT_GRID = {"nmf": (0.0, 0.01, 0.1), "pmf": (0.01, 0.1, 1.0), "two_tower": (0.1, 1.0, 10.0)}


def fit_embeddings(
    ratings,
    model: str,
    dim: int,
    *,
    regs: Sequence[float] | None = None,
    n_folds: int = 3,
    seed: int = 0,
    steps: int | None = None,
) -> Embeddings:
    """Fit a recommender to ratings, choosing its regularisation by cross-validation.

    Hron et al. (2023), Section 3 / Appendix: NMF (scikit-learn, missing ratings as zero,
    Frobenius loss with L2 penalty ``alpha``), probabilistic MF of the mean-centred observed
    ratings (MAP with Gaussian priors; Salakhutdinov & Mnih 2008, Eq. 4, fitted by Adam),
    and a two-tower model (id embeddings through a ReLU MLP per side, dot-product score).
    ``reg`` is chosen by ``n_folds``-fold cross-validation of the held-out RMSE over
    ``regs``, then the model is refitted on all ratings.

    Args:
        ratings: sparse ``(users, items)`` matrix of observed ratings.
        model: ``"nmf"``, ``"pmf"`` or ``"two_tower"``.
        dim: embedding dimension ``d``.
        regs: regularisation grid (default per model); one value skips cross-validation.
        n_folds: cross-validation folds (``>= 2``).
        seed: seed for the folds and the initialisation.
        steps: optimisation steps (default per model).

    Returns:
        :class:`Embeddings` with user and item vectors and the CV table.

    Raises:
        ValueError: unknown model, ``dim < 1``, bad ratings or a bad fold count.

    Example:
        >>> import numpy as np
        >>> r = np.random.default_rng(0).integers(1, 6, (20, 15)).astype(float)
        >>> emb = fit_embeddings(r, "nmf", 3, regs=[0.0])
        >>> emb.users.shape, emb.items.shape
        ((20, 3), (15, 3))
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}")
    if int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive integer; got {dim!r}")
    r = check_ratings(ratings)
    fit = _FITTERS[model]
    steps = int(steps or _DEFAULT_STEPS[model])
    regs = list(DEFAULT_GRID[model] if regs is None else regs)
    if not regs:
        raise ValueError("regs is empty")
    cv = {}
    if len(regs) > 1:
        if n_folds < 2:
            raise ValueError(f"n_folds must be at least 2; got {n_folds}")
        coo = r.tocoo()
        fold = _folds(r, n_folds, seed)
        for reg in regs:
            errs = []
            for f in range(n_folds):
                tr, va = fold != f, fold == f
                if model == "nmf":  # scikit-learn's NMF has no mask: drop held-out entries
                    train = sp.csr_matrix((coo.data[tr], (coo.row[tr], coo.col[tr])), shape=r.shape)
                    _, _, predict = fit(train, dim, reg, seed, steps)
                else:
                    _, _, predict = fit(r, dim, reg, seed, steps, train_mask=tr)
                pred = predict(coo.row[va], coo.col[va])
                errs.append(np.sqrt(np.mean((pred - coo.data[va]) ** 2)))
            cv[float(reg)] = float(np.mean(errs))
        best = min(cv, key=cv.get)
    else:
        best = float(regs[0])
    u, v, _ = fit(r, dim, best, seed, steps)
    return Embeddings(model, u, v, best, cv.get(best, float("nan")), cv)


def demand_users(emb: Embeddings, *, min_norm: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """The demand's support: user embeddings with (numerically) zero rows removed.

    Hron et al. (2023), Section 3: the demand distribution is the empirical distribution
    of the user embeddings. A zero user (possible under NMF's penalty) has no preferred
    direction and the same score for every item, so it does not affect incentives.

    Returns:
        ``(users, kept)``: the kept rows and their indices into ``emb.users``.

    Raises:
        ValueError: every user embedding is zero.
    """
    norms = np.linalg.norm(emb.users, axis=1)
    kept = np.flatnonzero(norms > min_norm)
    if kept.size == 0:
        raise ValueError(f"all {len(norms)} user embeddings of the {emb.model} model are zero")
    return emb.users[kept], kept
