"""The ranker: a higher-capacity model over user and item features that re-ranks candidates.

Score (a NeuMF-style network, He et al. 2017, eqs. 9-12):
``e_u = p_u + f_u A_u``, ``e_i = q_i + g_i A_i``,
``s(u, i) = e_u·e_i + w_2·relu(W_u e_u + W_i e_i + W_x (e_u ⊙ e_i) + b_1) + b_i``.
Trained with a sampled softmax: each observed pair competes against ``n_negatives`` items
drawn uniformly, ``L = -log softmax(s(u, i), s(u, j_1), ..., s(u, j_n))[0]`` (Bengio &
Senécal 2008), with Adam.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._validate import check_features, check_user_items

__all__ = ["MLPRanker"]


def _embed(params, fu, gi):
    eu = params["P"] + fu @ params["Au"]
    ei = params["Q"] + gi @ params["Ai"]
    return eu, ei


def _pair_scores(params, eu, hu, items, ei_all, hi_all):
    """Scores of users (n, d) against item ids (n, c)."""
    ei = ei_all[items]  # (n, c, d)
    hi = hi_all[items]  # (n, c, h)
    dot = jnp.einsum("nd,ncd->nc", eu, ei)
    x = (eu[:, None, :] * ei) @ params["Wx"]
    h = jax.nn.relu(hu[:, None, :] + hi + x)
    return dot + h @ params["w2"] + params["bi"][items]


def score_candidates(params, fu, users, items, gi):
    """Pure ranker scores ``(n, c)`` of ``users`` (n,) against item ids ``items`` (n, c)."""
    eu_all, ei_all = _embed(params, fu, gi)
    hi_all = ei_all @ params["Wi"]
    eu = eu_all[users]
    hu = eu @ params["Wu"] + params["b1"][None, :]
    return _pair_scores(params, eu, hu, items, ei_all, hi_all)


@functools.partial(
    jax.jit,
    static_argnames=("n_items", "batch_size", "n_negatives", "steps", "learning_rate", "l2"),
)
def _train_jit(
    params, key, rows, cols, fu, gi, *, n_items, batch_size, n_negatives, steps, learning_rate, l2
):
    opt = optax.adam(learning_rate)
    bs = batch_size

    def loss_fn(p, k):
        k1, k2 = jax.random.split(k)
        idx = jax.random.randint(k1, (bs,), 0, rows.shape[0])
        u, i = rows[idx], cols[idx]
        neg = jax.random.randint(k2, (bs, n_negatives), 0, n_items)
        items = jnp.concatenate([i[:, None], neg], axis=1)
        eu = p["P"][u] + fu[u] @ p["Au"]
        ei = p["Q"][items] + gi[items] @ p["Ai"]
        hu = eu @ p["Wu"] + p["b1"][None, :]
        hi = ei @ p["Wi"]
        dot = jnp.einsum("nd,ncd->nc", eu, ei)
        x = (eu[:, None, :] * ei) @ p["Wx"]
        s = dot + jax.nn.relu(hu[:, None, :] + hi + x) @ p["w2"] + p["bi"][items]
        ce = -jax.nn.log_softmax(s, axis=-1)[:, 0].mean()
        reg = (eu * eu).sum() / bs + (ei * ei).sum() / bs
        return ce + l2 * reg

    def body(carry, k):
        p, o = carry
        g = jax.grad(loss_fn)(p, k)
        upd, o = opt.update(g, o, p)
        return (optax.apply_updates(p, upd), o), None

    (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), jax.random.split(key, steps))
    return params


_score_candidates = jax.jit(score_candidates)


def _train(params, key, rows, cols, fu, gi, **static):
    return jax.tree.map(np.asarray, _train_jit(params, key, rows, cols, fu, gi, **static))


@dataclasses.dataclass
class MLPRanker:
    """Higher-capacity ranker over user/item ids and features (see the module docstring).

    Args:
        embedding_dim: d of ``e_u``, ``e_i``.
        hidden: width of the ReLU layer.
        n_negatives: uniformly sampled negatives per observed pair.
        epochs: passes over the observed pairs.
        batch_size: observed pairs per step.
        learning_rate: Adam step.
        l2: weight decay on the batch's embeddings.
        seed: seed of initialisation and sampling.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> m = sp.random(30, 12, density=0.3, format="csr", random_state=0)
        >>> fu, gi = np.ones((30, 2), "f4"), np.ones((12, 2), "f4")
        >>> r = MLPRanker(embedding_dim=4, hidden=8, epochs=1).fit(m, fu, gi)
        >>> r.score([0, 1], np.array([[0, 1], [2, 3]]), fu, gi).shape
        (2, 2)
    """

    embedding_dim: int = 32
    hidden: int = 32
    n_negatives: int = 8
    epochs: int = 5
    batch_size: int = 1024
    learning_rate: float = 3e-3
    l2: float = 1e-5
    seed: int = 0
    params: dict | None = dataclasses.field(default=None, repr=False)

    def init_params(self, rng, n_users, n_items, f_dim, g_dim) -> dict:
        """Initial parameters (a dict of float32 arrays) from a NumPy ``Generator``."""
        d, h = self.embedding_dim, self.hidden

        def normal(shape, scale):
            return (scale * rng.standard_normal(shape)).astype(np.float32)

        return {
            "P": normal((n_users, d), 0.1),
            "Q": normal((n_items, d), 0.1),
            "Au": normal((f_dim, d), 1 / np.sqrt(f_dim * d)),
            "Ai": normal((g_dim, d), 1 / np.sqrt(g_dim * d)),
            "Wu": normal((d, h), 1 / np.sqrt(d)),
            "Wi": normal((d, h), 1 / np.sqrt(d)),
            "Wx": normal((d, h), 1 / np.sqrt(d)),
            "b1": np.zeros((h,), np.float32),
            "w2": np.zeros((h,), np.float32),
            "bi": np.zeros((n_items,), np.float32),
        }

    def fit(self, user_items, user_features, item_features) -> MLPRanker:
        """Fit on all interactions.

        Args:
            user_items: sparse ``(n_users, n_items)`` interactions.
            user_features: ``(n_users, F)``.
            item_features: ``(n_items, G)``.

        Returns:
            ``self``.

        Raises:
            ValueError: on shape mismatches or an empty matrix.
        """
        m = check_user_items(user_items)
        n_users, n_items = m.shape
        fu = jnp.asarray(check_features(user_features, n_users, "user_features"))
        gi = jnp.asarray(check_features(item_features, n_items, "item_features"))
        coo = m.tocoo()
        if coo.nnz == 0:
            raise ValueError("user_items has no interactions; the ranker cannot be fitted")
        rows = jnp.asarray(coo.row, jnp.int32)
        cols = jnp.asarray(coo.col, jnp.int32)
        key = jax.random.key(self.seed)
        params = self.init_params(
            np.random.default_rng(self.seed), n_users, n_items, fu.shape[1], gi.shape[1]
        )
        bs = min(self.batch_size, coo.nnz)
        steps = max(1, self.epochs * coo.nnz // bs)
        self.params = _train(
            params,
            key,
            rows,
            cols,
            fu,
            gi,
            n_items=n_items,
            batch_size=bs,
            n_negatives=self.n_negatives,
            steps=steps,
            learning_rate=self.learning_rate,
            l2=self.l2,
        )
        return self

    def score(self, userids, items, user_features, item_features) -> np.ndarray:
        """Scores of each user's candidate items.

        Args:
            userids: ``(n,)`` user ids.
            items: ``(n, c)`` global item ids; ``-1`` marks an empty slot (score ``-inf``).
            user_features: ``(n_users, F)``.
            item_features: ``(n_items, G)``.

        Returns:
            ``(n, c)`` float32 scores.

        Raises:
            RuntimeError: if not fitted.
        """
        if self.params is None:
            raise RuntimeError("MLPRanker is not fitted; call fit first")
        items = np.asarray(items)
        valid = items >= 0
        s = _score_candidates(
            self.params,
            jnp.asarray(user_features, jnp.float32),
            jnp.asarray(np.asarray(userids), jnp.int32),
            jnp.asarray(np.where(valid, items, 0), jnp.int32),
            jnp.asarray(item_features, jnp.float32),
        )
        return np.where(valid, np.asarray(s), -np.inf).astype(np.float32)

    def config(self) -> dict:
        """Hyperparameters (for saving)."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "params"
        }
