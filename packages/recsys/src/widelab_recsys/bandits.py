"""Two-stage linear bandits: LinUCB nominators and ranker, naive and synchronised.

Model (Hron, Krauth, Jordan & Kilbertus 2020, "Exploration in two-stage recommender
systems", Sec. 2): arms ``a`` with true features ``x_a ∈ R^d``, rewards
``r = x_a·θ* + σ ε``. Nominator ``j`` owns the arms of pool ``j`` and sees cheaper
features ``z_a = Π_jᵀ x_a ∈ R^{d_j}``; each round it nominates its arm of highest upper
confidence bound; the ranker (full features) serves the nominee of highest UCB.

Every stage runs LinUCB (Li et al. 2010, Alg. 1; Abbasi-Yadkori et al. 2011) with ridge
statistics ``A = λI + Σ w_t z_t z_tᵀ`` kept as ``A⁻¹`` by Sherman-Morrison rank-one updates
and the estimate ``θ̂`` by recursive least squares; per-arm predictive means ``m_a = z_a·θ̂``
and variances ``v_a = z_aᵀA⁻¹z_a`` (in units of σ²) are updated in ``O(n d)`` per round:
``u = A⁻¹z``, ``c = w / (1 + w zᵀu)``, ``A⁻¹ ← A⁻¹ - c u uᵀ``, ``θ̂ ← θ̂ + c (r - z·θ̂) u``,
``v_a ← v_a - c (z_a·u)²``, ``m_a ← m_a + c (r - z·θ̂)(z_a·u)``. ``UCB_a = m_a + α √v_a``.

*Naive* two-stage LinUCB: the ranker and the serving nominator update on the observed
reward; other nominators learn nothing. *Synchronised*: afterwards, every nominator that
is more uncertain than the ranker about the arm it nominated (``v_j > v_R``) takes a
pseudo-observation ``(z, y)`` with weight ``w`` chosen so that its posterior predictive
mean and variance for that arm equal the ranker's (the KL projection of the paper,
Sec. 3): ``w = (v_j - v_R)/(v_j v_R)``, ``y = m_j + (m_R - m_j)(1 + w v_j)/(w v_j)``,
i.e. ``c = (v_j - v_R)/v_j²`` and ``c (y - m_j) = (m_R - m_j)/v_j`` above.

*Slates*: each nominator nominates its ``k`` arms of highest UCB, the ranker serves the
``K`` nominees of highest UCB as a slate, and every served arm's reward is observed
(semi-bandit feedback). This is the two-stage system as Hron, Krauth, Jordan & Kilbertus
describe it in the introduction of "On component interactions in two-stage recommender
systems" (NeurIPS 2021): nominators preselect a small set of candidates from their pools,
the ranker narrows them down and serves them. Their text beyond abstract and
introduction, and the slate rules of their experiments, were not available to check
here, so the rules below (additive slate reward, semi-bandit feedback, order of updates
and of synchronisation) are this module's choices and no equation of theirs is cited.
The slate's expected reward is the sum of its arms' ``x_a·θ*``; slate regret is measured against the best slate of size
``K`` over all arms, ``Σ_{top K} x_a·θ* - Σ_{a ∈ slate} x_a·θ*``. The ranker adds the ``K``
observations in slate order, a nominator those of its own arms (every served arm with
``share_feedback``); with synchronisation, each nominator then takes one
pseudo-observation per nominee, in its nomination order, against the ranker's posterior
after the round's real updates. ``k = K = 1`` is the one-arm system above.

Tie rule, every stage: arms of equal UCB are ordered by arm index, lowest first (a
nominator's top-k, the ranker's slate, single-stage LinUCB alike), so single- and
two-stage runs agree on instances with exact ties (e.g. unit-norm arms at round 1).

Everything runs as one ``jax.lax.scan`` over rounds, ``jax.vmap``-ed over seeds.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core.validate import require_float, require_int

__all__ = [
    "BanditInstance",
    "LinUCBState",
    "linucb_init",
    "linucb_update",
    "make_instance",
    "run_linucb",
    "run_two_stage",
    "simulate_regret",
    "synchronise",
]


class LinUCBState(NamedTuple):
    """Ridge statistics of one LinUCB learner over its ``n`` arms.

    Attributes:
        a_inv: ``(d, d)`` inverse of ``A = λI + Σ w z zᵀ``.
        theta: ``(d,)`` ridge estimate ``A⁻¹ b``.
        mean: ``(n,)`` ``z_a·θ̂`` for the learner's arms.
        var: ``(n,)`` ``z_aᵀ A⁻¹ z_a``.
    """

    a_inv: jax.Array
    theta: jax.Array
    mean: jax.Array
    var: jax.Array


def linucb_init(arm_features, ridge: float = 1.0) -> LinUCBState:
    """Prior state ``A = λI``, ``θ̂ = 0`` for arms with features ``(n, d)``.

    Args:
        arm_features: ``(n, d)`` features of the learner's arms.
        ridge: λ > 0.

    Returns:
        A :class:`LinUCBState`.
    """
    z = jnp.asarray(arm_features)
    d = z.shape[1]
    return LinUCBState(
        a_inv=jnp.eye(d, dtype=z.dtype) / ridge,
        theta=jnp.zeros((d,), z.dtype),
        mean=jnp.zeros((z.shape[0],), z.dtype),
        var=jnp.sum(z * z, axis=1) / ridge,
    )


def _rank_one(state: LinUCBState, arm_features, z, c, coef) -> LinUCBState:
    """``A⁻¹ -= c u uᵀ``, ``θ̂ += coef u`` with ``u = A⁻¹ z``, and the cached arm moments."""
    u = state.a_inv @ z
    zu = arm_features @ u
    return LinUCBState(
        a_inv=state.a_inv - c * jnp.outer(u, u),
        theta=state.theta + coef * u,
        mean=state.mean + coef * zu,
        var=state.var - c * zu * zu,
    )


def linucb_update(state: LinUCBState, arm_features, z, reward, weight=1.0) -> LinUCBState:
    """Rank-one ridge update with an observation ``(z, reward)`` of weight ``weight``.

    Args:
        state: current state.
        arm_features: ``(n, d)`` features of the learner's arms (for the cached moments).
        z: ``(d,)`` features of the observed arm.
        reward: observed reward.
        weight: observation weight ``w`` (precision relative to σ⁻²); 0 leaves the state.

    Returns:
        The updated :class:`LinUCBState`.
    """
    u = state.a_inv @ z
    c = weight / (1.0 + weight * (z @ u))
    return _rank_one(state, arm_features, z, c, c * (reward - z @ state.theta))


def synchronise(state: LinUCBState, arm_features, z, ranker_mean, ranker_var) -> LinUCBState:
    """Pseudo-observation that moves a nominator's prediction at ``z`` onto the ranker's.

    If the nominator's predictive variance ``v = zᵀA⁻¹z`` exceeds ``ranker_var``, take the
    observation ``(z, y)`` with weight ``w = (v - v_R)/(v v_R)`` and
    ``y = m + (m_R - m)(1 + w v)/(w v)``: afterwards the nominator's predictive mean and
    variance at ``z`` equal ``(m_R, v_R)``, the Gaussian closest in KL (Hron et al. 2020,
    Sec. 3). Otherwise the state is unchanged.

    Args:
        state: nominator state.
        arm_features: ``(n, d_j)`` the nominator's arm features.
        z: ``(d_j,)`` the nominated arm's nominator features.
        ranker_mean: ranker's predictive mean ``m_R`` for that arm.
        ranker_var: ranker's predictive variance ``v_R`` (units of σ²).

    Returns:
        The synchronised :class:`LinUCBState`.
    """
    u = state.a_inv @ z
    v = z @ u
    m = z @ state.theta
    more = v > ranker_var
    safe_v = jnp.where(more, v, 1.0)
    c = jnp.where(more, (v - ranker_var) / safe_v**2, 0.0)
    coef = jnp.where(more, (ranker_mean - m) / safe_v, 0.0)
    return _rank_one(state, arm_features, z, c, coef)


def _ucb(state, alpha):
    return state.mean + alpha * jnp.sqrt(jnp.maximum(state.var, 0.0))


def _argmax_lowest_id(values, ids):
    """Position of the largest value; among equal values, the one with the lowest id.

    The tie rule of every stage here and in :mod:`widelab_recsys.bandit_reference`:
    ties in the UCB go to the lowest arm index, whichever stage decides, so single- and
    two-stage runs on instances with exact ties (e.g. unit-norm arms at round 1) agree.
    ``-inf`` values (empty pool slots) are never chosen while a finite value exists.
    """
    best = jnp.max(values, axis=-1, keepdims=True)
    key = jnp.where(values == best, ids, jnp.iinfo(jnp.int32).max)
    return jnp.argmin(key, axis=-1)


def _top_lowest_id(values, ids, k: int):
    """Positions of the ``k`` largest ``values`` (last axis), best first; equal values are
    ordered by ``ids``, lowest first (:func:`_argmax_lowest_id` for ``k = 1``)."""
    if k == 1:
        return _argmax_lowest_id(values, ids)[..., None]
    ids = jnp.broadcast_to(ids, values.shape)
    pos = jnp.broadcast_to(jnp.arange(values.shape[-1]), values.shape)
    neg = jnp.where(values == 0, 0.0, -values)  # -0.0 and +0.0 tie, as in NumPy
    _, _, order = jax.lax.sort((neg, ids, pos), dimension=-1, num_keys=2)
    return order[..., :k]


def _slate_noise(noise):
    """``(noise (T, K), K, one_arm)``: a 1-D ``noise`` is the one-arm system."""
    noise = jnp.asarray(noise)
    if noise.ndim not in (1, 2) or noise.shape[-1] < 1:
        raise ValueError(f"noise must have shape (T,) or (T, K) with K >= 1; got {noise.shape}")
    one_arm = noise.ndim == 1
    eps = noise[:, None] if one_arm else noise
    return eps, eps.shape[1], one_arm


class BanditInstance(NamedTuple):
    """A two-stage linear bandit problem.

    Attributes:
        features: ``(A, d)`` true arm features (seen by the ranker).
        theta: ``(d,)`` true parameter θ*.
        pools: ``(P, n)`` arm ids of each nominator's pool; pools of unequal sizes fill
            their row's tail with ``-1`` (empty slots, never nominated).
        projections: ``(P, d, d_j)`` nominator feature maps ``Π_j``.
        warm_arms: ``(n0,)`` arms the ranker has seen before round 1 (its extra knowledge).
    """

    features: jax.Array
    theta: jax.Array
    pools: jax.Array
    projections: jax.Array
    warm_arms: jax.Array


def make_instance(
    key,
    *,
    n_arms: int = 100,
    dim: int = 20,
    n_pools: int = 4,
    nominator_dim: int = 5,
    warm_start: int = 0,
    shared_features: bool = False,
) -> BanditInstance:
    """A random instance: Gaussian features scaled to unit norm, θ* uniform on the sphere.

    Nominator ``j`` sees an orthonormal projection onto ``nominator_dim`` directions whose
    span contains θ* (so its reduced linear model is well specified), drawn independently
    per nominator; with ``shared_features`` every stage sees ``x_a`` itself.

    Args:
        key: PRNG key.
        n_arms: A (divisible by ``n_pools``).
        dim: d.
        n_pools: P.
        nominator_dim: d_j (ignored with ``shared_features``).
        warm_start: number of uniformly random arms the ranker observes before round 1.
        shared_features: all stages use the true features.

    Returns:
        A :class:`BanditInstance`.

    Raises:
        ValueError: when ``n_arms`` is not a multiple of ``n_pools`` or dims are invalid.
    """
    require_int(n_pools, "n_pools", min=1)
    if n_arms % n_pools:
        raise ValueError(f"n_arms={n_arms} must be a multiple of n_pools={n_pools}")
    if not 1 <= nominator_dim <= dim:
        raise ValueError(f"nominator_dim must lie in 1..dim={dim}; got {nominator_dim}")
    kx, kt, kp, kq, kw = jax.random.split(key, 5)
    x = jax.random.normal(kx, (n_arms, dim))
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    theta = jax.random.normal(kt, (dim,))
    theta = theta / jnp.linalg.norm(theta)
    pools = jax.random.permutation(kp, n_arms).reshape(n_pools, n_arms // n_pools)
    if shared_features:
        proj = jnp.broadcast_to(jnp.eye(dim), (n_pools, dim, dim))
    else:
        g = jax.random.normal(kq, (n_pools, dim, nominator_dim - 1))
        basis = jnp.concatenate([jnp.broadcast_to(theta[None, :, None], (n_pools, dim, 1)), g], 2)
        proj = jnp.linalg.qr(basis)[0]
    warm = jax.random.randint(kw, (warm_start,), 0, n_arms)
    return BanditInstance(x, theta, pools, proj, warm)


def run_linucb(features, theta, noise, *, alpha: float = 1.0, ridge: float = 1.0):
    """Single-stage LinUCB over ``len(noise)`` rounds (one ``lax.scan``), one arm or a slate.

    Each round serves the ``K`` arms of highest UCB (ties: lowest arm index first) and
    adds their observations in slate order (module docstring).

    Args:
        features: ``(A, d)`` arm features.
        theta: ``(d,)`` true parameter.
        noise: ``(T,)`` reward noise, already scaled by σ (``r_t = x_{a_t}·θ* + noise_t``),
            or ``(T, K)`` for slates of ``K`` arms (one noise per slate position).
        alpha: UCB width α.
        ridge: λ.

    Returns:
        ``(arms, regret (T,))``: ``arms`` is ``(T,)`` for a 1-D ``noise``, ``(T, K)``
        (slate order) otherwise; ``regret`` is the slate regret against the best ``K`` arms.

    Raises:
        ValueError: for a ``noise`` that is not ``(T,)`` / ``(T, K)``, or ``K`` above ``A``.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.eye(3)
        >>> arms, regret = run_linucb(x, jnp.array([0.1, 0.9, 0.5]), jnp.zeros((4, 2)))
        >>> arms.shape, regret.shape
        ((4, 2), (4,))
    """
    eps, k_slate, one_arm = _slate_noise(noise)
    if k_slate > features.shape[0]:
        raise ValueError(f"slate size K={k_slate} exceeds the number of arms ({features.shape[0]})")
    arms, regret = _linucb(jnp.asarray(features), jnp.asarray(theta), eps, alpha, ridge)
    return (arms[:, 0] if one_arm else arms), regret


@jax.jit
def _linucb(features, theta, eps, alpha, ridge):
    """:func:`run_linucb` on ``(T, K)`` noise."""
    k_slate = eps.shape[1]
    mu = features @ theta
    best = jnp.sum(jnp.sort(mu)[-k_slate:]) if k_slate > 1 else jnp.max(mu)
    ids = jnp.arange(features.shape[0])

    def step(state, e):
        ucb = _ucb(state, alpha)
        served = jnp.argmax(ucb)[None] if k_slate == 1 else _top_lowest_id(ucb, ids, k_slate)
        for s in range(k_slate):
            a = served[s]
            state = linucb_update(state, features, features[a], mu[a] + e[s])
        return state, (served, best - jnp.sum(mu[served]))

    _, (arms, regret) = jax.lax.scan(step, linucb_init(features, ridge), eps)
    return arms, regret


def _check_nominations(pools, nominate: int, k_slate: int):
    """Static checks of ``nominate`` and the slate size against the pools' sizes."""
    require_int(nominate, "nominate", min=1)
    if nominate > pools.shape[1]:
        raise ValueError(
            f"nominate={nominate} exceeds the largest pool ({pools.shape[1]} slots); "
            "each nominator nominates at most its pool"
        )
    try:
        sizes = np.sum(np.asarray(pools) >= 0, axis=1)
    except jax.errors.TracerArrayConversionError:  # traced pools: only the static bound
        sizes = np.full(pools.shape[0], pools.shape[1])
    total = int(np.minimum(sizes, nominate).sum())
    if k_slate > total:
        raise ValueError(
            f"slate size K={k_slate} exceeds the {total} arms the nominators nominate "
            f"(nominate={nominate} per pool, pool sizes {sizes.tolist()})"
        )


def run_two_stage(
    inst: BanditInstance,
    noise,
    *,
    sync: bool,
    alpha: float = 1.0,
    ridge: float = 1.0,
    share_feedback: bool = False,
    warm_noise=None,
    nominate: int = 1,
):
    """Two-stage LinUCB over ``len(noise)`` rounds: top-``k`` nominations, a slate of ``K``.

    Each nominator nominates the ``nominate`` arms of its pool with the highest UCB under
    its own features; the ranker serves the ``K`` nominees of highest UCB (``K = 1`` for a
    1-D ``noise``). Updates, synchronisation and slate regret: module docstring.

    Args:
        inst: the :class:`BanditInstance` (pools disjoint; ``-1`` marks empty slots).
        noise: ``(T,)`` scaled reward noise (one arm served per round) or ``(T, K)``
            (slates of ``K`` arms; one noise per slate position).
        sync: synchronise nominators with the ranker (module docstring); else naive. May
            be a traced boolean (e.g. vmapped over both systems).
        alpha: UCB width of every stage.
        ridge: λ of every stage.
        share_feedback: every nominator also updates on every served arm (through its own
            features), not only on arms of its pool.
        warm_noise: ``(n0,)`` noise of the ranker's warm-start observations (zeros if None).
        nominate: ``k``, arms nominated by each nominator per round (a pool smaller than
            ``k`` nominates all its arms).

    Returns:
        ``(arms, regret (T,))``: ``arms`` is ``(T,)`` for a 1-D ``noise``, ``(T, K)``
        (slate order) otherwise; ``regret`` is the slate regret against the best slate of
        ``K`` arms. Ties in a UCB go to the lowest arm index in both stages (as in
        :func:`run_linucb`).

    Raises:
        ValueError: for a bad ``noise`` shape, ``nominate`` above the largest pool, or a
            slate larger than the number of nominated arms.

    Example:
        >>> import jax
        >>> inst = make_instance(jax.random.key(0), n_arms=12, dim=4, n_pools=3,
        ...                      nominator_dim=2)
        >>> noise = 0.1 * jax.random.normal(jax.random.key(1), (50, 2))
        >>> arms, regret = run_two_stage(inst, noise, sync=True, nominate=2)
        >>> arms.shape, regret.shape
        ((50, 2), (50,))
    """
    eps, k_slate, one_arm = _slate_noise(noise)
    _check_nominations(inst.pools, nominate, k_slate)
    x = jnp.asarray(inst.features)
    wn = jnp.zeros(inst.warm_arms.shape, x.dtype) if warm_noise is None else warm_noise
    has_sync = sync is not False  # a traced flag compiles both systems into one program
    arms, regret = _two_stage(
        BanditInstance(*(jnp.asarray(a) for a in inst)),
        eps,
        jnp.asarray(wn),
        jnp.asarray(sync),
        alpha,
        ridge,
        share_feedback=bool(share_feedback),
        k_nom=nominate,
        has_sync=has_sync,
    )
    return (arms[:, 0] if one_arm else arms), regret


@functools.partial(jax.jit, static_argnames=("share_feedback", "k_nom", "has_sync"))
def _two_stage(inst, eps, wn, sync, alpha, ridge, *, share_feedback, k_nom, has_sync):
    """:func:`run_two_stage` on ``(T, K)`` noise, one compiled program per setting."""
    k_slate = eps.shape[1]
    x, mu = inst.features, inst.features @ inst.theta
    best = jnp.sum(jnp.sort(mu)[-k_slate:]) if k_slate > 1 else jnp.max(mu)
    z_all = jnp.einsum("ad,pde->pae", x, inst.projections)  # (P, A, d_j)
    p_idx = jnp.arange(inst.pools.shape[0])
    slot_ok = inst.pools >= 0
    pools = jnp.where(slot_ok, inst.pools, 0)
    z_pool = jnp.where(slot_ok[..., None], z_all[p_idx[:, None], pools], 0.0)  # (P, n, d_j)
    ranker = linucb_init(x, ridge)

    def warm(state, aw):
        a, e = aw
        return linucb_update(state, x, x[a], mu[a] + e), None

    ranker, _ = jax.lax.scan(warm, ranker, (inst.warm_arms, wn))
    noms = jax.vmap(linucb_init, in_axes=(0, None))(z_pool, ridge)
    nom_update = jax.vmap(_rank_one)

    def step(carry, e):
        ranker, noms = carry
        ucb = jnp.where(slot_ok, jax.vmap(_ucb, in_axes=(0, None))(noms, alpha), -jnp.inf)
        local = _top_lowest_id(ucb, pools, k_nom)  # (P, k) pool slots, best first
        nominees = jnp.take_along_axis(pools, local, axis=1)  # (P, k) arm ids
        nom_ok = jnp.take_along_axis(slot_ok, local, axis=1)
        cand, cand_ok = nominees.reshape(-1), nom_ok.reshape(-1)  # pool-major
        r_ucb = jnp.where(cand_ok, _ucb(ranker, alpha)[cand], -jnp.inf)
        pos = _top_lowest_id(r_ucb, cand, k_slate)  # (K,) candidate positions
        served, owner = cand[pos], pos // k_nom
        r = mu[served] + e

        def observe(s, states):  # the slate's observations, in slate order
            ranker, noms = states
            a = served[s]
            ranker = linucb_update(ranker, x, x[a], r[s])
            z_served = z_all[:, a]  # (P, d_j)
            u = jnp.einsum("pde,pe->pd", noms.a_inv, z_served)
            w = ((p_idx == owner[s]) | share_feedback).astype(x.dtype)
            c = w / (1.0 + w * jnp.sum(z_served * u, axis=1))
            coef = c * (r[s] - jnp.sum(z_served * noms.theta, axis=1))
            return ranker, nom_update(noms, z_pool, z_served, c, coef)

        ranker, noms = jax.lax.fori_loop(0, k_slate, observe, (ranker, noms))
        if has_sync:

            def pseudo(i, noms):  # each nominee, in nomination order
                z_nom = z_pool[p_idx, local[:, i]]  # (P, d_j)
                arm = nominees[:, i]
                # inf: never synchronise (naive system, or an empty slot of a small pool)
                v_r = jnp.where(sync & nom_ok[:, i], ranker.var[arm], jnp.inf)
                return jax.vmap(synchronise)(noms, z_pool, z_nom, ranker.mean[arm], v_r)

            noms = jax.lax.fori_loop(0, k_nom, pseudo, noms)
        return (ranker, noms), (served, best - jnp.sum(mu[served]))

    _, (arms, regret) = jax.lax.scan(step, (ranker, noms), eps)
    return arms, regret


def simulate_regret(
    key,
    *,
    n_seeds: int = 8,
    rounds: int = 2000,
    n_arms: int = 100,
    dim: int = 20,
    n_pools: int = 10,
    nominator_dim: int = 5,
    warm_start: int = 200,
    shared_features: bool = False,
    noise_std: float = 0.1,
    alpha: float = 1.0,
    ridge: float = 1.0,
    slate: int = 1,
    nominate: int = 1,
) -> dict[str, np.ndarray]:
    """Per-round regret of single-stage, naive and synchronised two-stage LinUCB.

    Each seed draws an instance (:func:`make_instance`) and one noise sequence shared by
    the three systems; the runs are vmapped over seeds. With ``slate = K > 1`` every
    system serves ``K`` arms a round (single-stage: the ``K`` arms of highest UCB;
    two-stage: each nominator nominates its ``nominate`` arms of highest UCB and the
    ranker serves the ``K`` nominees of highest UCB) and the regret is the slate regret
    against the best ``K`` arms (module docstring). ``slate = nominate = 1`` is the
    one-arm system, with the same draws as before slates existed.

    Args:
        key: PRNG key.
        n_seeds: independent instances.
        rounds: T.
        n_arms, dim, n_pools, nominator_dim, warm_start, shared_features: instance.
        noise_std: σ.
        alpha: UCB width.
        ridge: λ.
        slate: ``K``, arms served a round (one noise draw per slate position).
        nominate: ``k``, arms each nominator nominates a round.

    Returns:
        ``{"single", "naive", "sync"}`` -> ``(n_seeds, T)`` per-round (slate) regret arrays.

    Raises:
        ValueError, TypeError: a count below 1 (``warm_start`` below 0), a negative or
            non-finite ``noise_std`` / ``alpha``, a ``ridge`` that is not positive, an
            instance :func:`make_instance` rejects, ``nominate`` above the pool size
            ``n_arms / n_pools``, or ``slate`` above the ``n_pools * nominate`` nominees.

    Example:
        ``simulate_regret(jax.random.key(0), n_seeds=16, rounds=1000, slate=3)`` gives the
        report's slate curves (``{"single", "naive", "sync"}``, each ``(16, 1000)``). A
        slate needs enough nominees, checked before anything is compiled:

        >>> import jax
        >>> simulate_regret(jax.random.key(0), n_arms=12, n_pools=3, slate=4)
        Traceback (most recent call last):
        ...
        ValueError: slate=4 exceeds the 3 arms nominated a round (n_pools=3 x nominate=1)
    """
    for name, value in [
        ("n_seeds", n_seeds),
        ("rounds", rounds),
        ("n_arms", n_arms),
        ("dim", dim),
        ("n_pools", n_pools),
        ("nominator_dim", nominator_dim),
        ("slate", slate),
        ("nominate", nominate),
    ]:
        require_int(value, name, min=1)
    require_int(warm_start, "warm_start", min=0)
    require_float(noise_std, "noise_std", min=0)
    require_float(alpha, "alpha", min=0)
    require_float(ridge, "ridge", min=0, min_open=True)
    if n_arms % n_pools == 0 and nominate > n_arms // n_pools:
        raise ValueError(
            f"nominate={nominate} exceeds the pool size n_arms / n_pools = {n_arms // n_pools}"
        )
    if slate > n_pools * nominate:
        raise ValueError(
            f"slate={slate} exceeds the {n_pools * nominate} arms nominated a round "
            f"(n_pools={n_pools} x nominate={nominate})"
        )
    instance = dict(
        n_arms=n_arms,
        dim=dim,
        n_pools=n_pools,
        nominator_dim=nominator_dim,
        warm_start=warm_start,
        shared_features=shared_features,
    )
    keys = jax.random.split(key, n_seeds)
    insts = _instances(keys, tuple(instance.items()))
    single, naive, synced = _simulate(
        keys, insts, noise_std, alpha, ridge, rounds=rounds, slate=slate, nominate=nominate
    )
    return {"single": np.asarray(single), "naive": np.asarray(naive), "sync": np.asarray(synced)}


@functools.partial(jax.jit, static_argnums=(1,))
def _instances(keys, instance):
    """One :func:`make_instance` per seed key (vmapped); ``instance`` is a tuple of its
    keyword items (hashable, so static). Compiled apart from the runs, so settings that
    share the instances (e.g. slate sizes) share this program."""
    return jax.vmap(lambda k: make_instance(jax.random.split(k, 3)[0], **dict(instance)))(keys)


@functools.partial(jax.jit, static_argnames=("rounds", "slate", "nominate"))
def _simulate(keys, insts, noise_std, alpha, ridge, *, rounds, slate, nominate):
    """:func:`simulate_regret`'s runs, vmapped over seeds (``keys`` and ``insts``)."""

    def one(k, inst):
        _, kn, kw = jax.random.split(k, 3)
        # (T,) for the one-arm system (its draws predate slates), else (T, K)
        noise = noise_std * jax.random.normal(kn, (rounds,) if slate == 1 else (rounds, slate))
        wnoise = noise_std * jax.random.normal(kw, inst.warm_arms.shape)
        _, single = run_linucb(inst.features, inst.theta, noise, alpha=alpha, ridge=ridge)
        both = jax.vmap(
            lambda flag: run_two_stage(
                inst,
                noise,
                sync=flag,
                alpha=alpha,
                ridge=ridge,
                warm_noise=wnoise,
                nominate=nominate,
            )[1]
        )(jnp.array([False, True]))
        return single, both[0], both[1]

    return jax.vmap(one)(keys, insts)
