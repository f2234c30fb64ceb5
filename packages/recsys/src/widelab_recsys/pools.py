"""Item-pool allocation: which nominator may nominate which item.

A pool allocation is an int array ``pools`` of shape ``(n_items,)`` with values in
``0..n_pools-1``. Three allocations (Hron, Krauth, Jordan & Kilbertus 2021, Sec. 4):
random (balanced), k-means on item embeddings, and pools learned by a mixture of experts
in which the nominators are the experts over items.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._validate import check_features, check_user_items

__all__ = ["MoEResult", "kmeans_pools", "learn_pools", "random_pools"]


def _check_n_pools(n_pools, n_items):
    if not isinstance(n_pools, int | np.integer) or n_pools < 1:
        raise ValueError(f"n_pools must be a positive int; got {n_pools!r}")
    if n_pools > n_items:
        raise ValueError(f"n_pools={n_pools} exceeds the number of items ({n_items})")


def random_pools(n_items: int, n_pools: int, *, seed: int = 0) -> np.ndarray:
    """A uniformly random balanced allocation (pool sizes differ by at most one).

    Args:
        n_items: number of items.
        n_pools: number of pools.
        seed: seed of the permutation.

    Returns:
        ``(n_items,)`` int array of pool indices.

    Raises:
        ValueError: if ``n_pools`` is not in ``1..n_items``.
    """
    _check_n_pools(n_pools, n_items)
    rng = np.random.default_rng(seed)
    return (rng.permutation(n_items) % n_pools).astype(np.int64)


def kmeans_pools(item_embeddings, n_pools: int, *, seed: int = 0) -> np.ndarray:
    """Pools from k-means (Lloyd 1982, k-means++ seeding) on item embeddings.

    Args:
        item_embeddings: ``(n_items, d)`` array (e.g. ALS item factors or SVD features).
        n_pools: number of clusters.
        seed: k-means seed.

    Returns:
        ``(n_items,)`` int array of pool indices (every pool non-empty).

    Raises:
        ValueError: on a bad shape or ``n_pools``.
    """
    from sklearn.cluster import KMeans

    x = np.asarray(item_embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"item_embeddings must be (n_items, d); got shape {x.shape}")
    _check_n_pools(n_pools, x.shape[0])
    km = KMeans(n_clusters=n_pools, n_init=4, random_state=seed).fit(x)
    return _relabel_nonempty(km.labels_.astype(np.int64), n_pools)


def _relabel_nonempty(pools, n_pools):
    """Move one item into every empty pool (from the largest pool) so all pools are used."""
    pools = pools.copy()
    for p in range(n_pools):
        if not np.any(pools == p):
            big = np.bincount(pools, minlength=n_pools).argmax()
            pools[np.flatnonzero(pools == big)[0]] = p
    return pools


@dataclasses.dataclass(frozen=True)
class MoEResult:
    """Output of :func:`learn_pools`.

    Attributes:
        pools: ``(n_items,)`` hard allocation, argmax of the final gate.
        gate: ``(n_items, n_pools)`` final gate probabilities.
        losses: per-epoch training loss (likelihood part only).
        temperatures: per-epoch gate temperature.
    """

    pools: np.ndarray
    gate: np.ndarray
    losses: np.ndarray
    temperatures: np.ndarray


def learn_pools(
    user_items,
    n_pools: int,
    *,
    user_features,
    item_features,
    rank: int = 2,
    epochs: int = 60,
    batch_size: int = 256,
    learning_rate: float = 0.03,
    load_balance: float = 1.0,
    temperature_start: float = 1.0,
    temperature_end: float = 0.05,
    seed: int = 0,
) -> MoEResult:
    """Learn an item-pool allocation with a mixture of experts over items.

    Expert ``e`` is a low-capacity linear nominator ``s_e(u, i) = (f_u A_e)·q_{e,i} + b_{e,i}``;
    the gate assigns items to experts, ``g(i) = softmax((g_i W + c_i) / T)``, and the
    mixture scores ``s(u, i) = Σ_e g_e(i) s_e(u, i)`` are trained jointly with the gate on
    the multinomial likelihood over all items plus the load-balancing term
    ``λ E Σ_e load_e²`` with ``load_e = mean_i g_e(i)`` (equal to λ at a balanced split;
    cf. Shazeer et al. 2017, eq. 6, and Fedus et al. 2021, eq. 4). The temperature ``T``
    is annealed geometrically from ``temperature_start`` to ``temperature_end`` so the gate
    ends (nearly) hard; the pools are its argmax. This follows the MoE pool learning of
    Hron et al. (2021, Sec. 4.2), with items (not users) routed to experts.

    Args:
        user_items: sparse ``(n_users, n_items)`` interactions.
        n_pools: number of experts / pools E.
        user_features: ``(n_users, F)``.
        item_features: ``(n_items, G)``.
        rank: embedding dimension of every expert (keep it low: the point of pools).
        epochs: passes over users.
        batch_size: users per step.
        learning_rate: Adam step.
        load_balance: λ.
        temperature_start: initial T.
        temperature_end: final T.
        seed: seed of initialisation and batching.

    Returns:
        A :class:`MoEResult`.

    Raises:
        ValueError: on bad shapes or settings.
    """
    m = check_user_items(user_items)
    n_users, n_items = m.shape
    _check_n_pools(n_pools, n_items)
    if not (temperature_start > 0 and temperature_end > 0):
        raise ValueError("temperatures must be positive")
    fu_all = check_features(user_features, n_users, "user_features")
    gi = jnp.asarray(check_features(item_features, n_items, "item_features"))
    e, f_dim, g_dim = n_pools, fu_all.shape[1], gi.shape[1]
    rng0 = np.random.default_rng(seed)  # host-side init: no per-shape compilation

    def normal(shape, scale):
        return (scale * rng0.standard_normal(shape)).astype(np.float32)

    params = {
        "A": normal((e, f_dim, rank), 1 / np.sqrt(f_dim)),
        "Q": normal((e, n_items, rank), 0.1),
        "B": np.zeros((e, n_items), np.float32),
        "W": normal((g_dim, e), 0.1),
        "c": normal((n_items, e), 0.1),
    }
    opt = optax.adam(learning_rate)
    opt_state = opt.init(params)

    def gate(p, t):
        return jax.nn.softmax((gi @ p["W"] + p["c"]) / t, axis=-1)

    @jax.jit
    def step(p, o, fu, y, t):
        def loss_fn(p):
            g = gate(p, t)  # (n_items, E)
            eu = jnp.einsum("bf,efr->ebr", fu, p["A"])
            s_e = jnp.einsum("ebr,eir->ebi", eu, p["Q"]) + p["B"][:, None, :]
            s = jnp.einsum("ebi,ie->bi", s_e, g)
            logp = jax.nn.log_softmax(s, axis=-1)
            nll = -(y * logp).sum() / jnp.maximum(y.sum(), 1.0)
            load = g.mean(axis=0)
            return nll + load_balance * e * jnp.sum(load * load), nll

        (_, nll), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
        upd, o = opt.update(grads, o, p)
        return optax.apply_updates(p, upd), o, nll

    rng = np.random.default_rng(seed)
    bs = min(batch_size, n_users)
    n_batches = -(-n_users // bs)
    binary = m.copy()
    binary.data[:] = 1.0
    temps = np.geomspace(temperature_start, temperature_end, max(epochs, 1))
    losses = []
    for t in temps:
        order = np.resize(rng.permutation(n_users), n_batches * bs)
        epoch_nll = []
        for b in range(n_batches):
            rows = order[b * bs : (b + 1) * bs]
            params, opt_state, nll = step(
                params,
                opt_state,
                jnp.asarray(fu_all[rows]),
                jnp.asarray(binary[rows].toarray()),
                jnp.float32(t),
            )
            epoch_nll.append(nll)  # stays on the device: no host sync per step
        losses.append(jnp.mean(jnp.stack(epoch_nll)))
    g = np.asarray(gate(params, jnp.float32(temps[-1])))
    pools = _relabel_nonempty(g.argmax(axis=1).astype(np.int64), n_pools)
    return MoEResult(pools=pools, gate=g, losses=np.asarray(jnp.stack(losses)), temperatures=temps)
