"""Two-stage linear bandits against the NumPy reference (one arm per round and slates of
K arms), in float64 and at exact ties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_recsys import (
    BanditInstance,
    linucb_reference,
    make_instance,
    run_linucb,
    run_two_stage,
    two_stage_reference,
)


def unequal_pool_instance(seed, pools, dim=5, d_j=3, n_warm=4):
    """Arms, unit-norm parameter, pools padded with -1, per-pool orthonormal
    projections, warm-start arms and their noise."""
    rng = np.random.default_rng(seed)
    n_arms = 1 + max(int(np.max(p)) for p in pools)
    x = rng.normal(size=(n_arms, dim)) / np.sqrt(dim)
    theta = rng.normal(size=dim)
    theta /= np.linalg.norm(theta)
    proj = np.stack([np.linalg.qr(rng.normal(size=(dim, d_j)))[0] for _ in pools])
    padded = np.full((len(pools), max(len(p) for p in pools)), -1, np.int64)
    for j, p in enumerate(pools):
        padded[j, : len(p)] = p
    warm = rng.integers(0, n_arms, n_warm)
    return x, theta, padded, proj, warm, 0.3 * rng.normal(size=n_warm)


def tied_instance():
    """Arms +-e_i of exactly equal norms (every UCB ties at round 1, in float32 too),
    in pools whose order is not arm order: ``(x, theta, pools, proj, instance)``."""
    x = np.concatenate([np.eye(4), -np.eye(4)]).astype(np.float32)
    pools = np.array([[6, 2], [5, 0], [7, 1], [3, 4]])
    proj = np.broadcast_to(np.eye(4, dtype=np.float32), (4, 4, 4))
    theta = np.full(4, 0.5, np.float32)
    inst = BanditInstance(*(jnp.asarray(a) for a in (x, theta, pools, proj, np.zeros(0, int))))
    return x, theta, pools, proj, inst


@pytest.mark.parametrize("sync", [False, True])
def test_two_stage_float64_identical_to_numpy_reference_with_unequal_pools(sync):
    # pools of sizes 1, 3 and 8 (no duplicates, empty slots -1)
    pools = [np.array([5]), np.array([0, 9, 2]), np.array([1, 3, 4, 6, 7, 8, 10, 11])]
    x, theta, padded, proj, warm, wn = unequal_pool_instance(0, pools)
    noise = 0.3 * np.random.default_rng(1).normal(size=120)
    ref, ref_regret = two_stage_reference(
        x, theta, pools, proj, noise, sync=sync, alpha=0.7, warm_arms=warm, warm_noise=wn
    )
    with jax.enable_x64(True):
        inst = BanditInstance(*(jnp.asarray(a) for a in (x, theta, padded, proj, warm)))
        arms, regret = run_two_stage(
            inst, jnp.asarray(noise), sync=sync, alpha=0.7, warm_noise=jnp.asarray(wn)
        )
    np.testing.assert_array_equal(np.asarray(arms), ref)
    np.testing.assert_allclose(np.asarray(regret), ref_regret, atol=1e-12)
    assert len(np.unique(ref)) > 3  # it explores
    assert np.all(np.isin(ref, np.concatenate(pools)))


def test_ties_go_to_the_lowest_arm_in_single_and_two_stage_runs():
    # arms ±e_i have exactly equal norms: every UCB ties at round 1, in float32 too
    x, theta, pools, proj, inst = tied_instance()
    noise = jnp.zeros(1)
    single, _ = run_linucb(inst.features, inst.theta, noise)
    two, _ = run_two_stage(inst, noise, sync=True)
    ref, _ = two_stage_reference(x, theta, pools, proj, np.zeros(1), sync=True)
    assert int(single[0]) == int(two[0]) == ref[0] == 0


def test_slates_float64_identical_to_numpy_reference_with_unequal_pools():
    # pools of sizes 1, 3 and 8; each nominates its top 2 (the 1-arm pool its one arm),
    # the ranker serves 3 of the 5 nominees
    pools = [np.array([5]), np.array([0, 9, 2]), np.array([1, 3, 4, 6, 7, 8, 10, 11])]
    x, theta, padded, proj, warm, wn = unequal_pool_instance(0, pools)
    noise = 0.3 * np.random.default_rng(1).normal(size=(80, 3))
    with jax.enable_x64(True):
        inst = BanditInstance(*(jnp.asarray(a) for a in (x, theta, padded, proj, warm)))
        arms, regret = jax.vmap(
            lambda flag: run_two_stage(
                inst, jnp.asarray(noise), sync=flag, alpha=0.7, warm_noise=wn, nominate=2
            )
        )(jnp.array([False, True]))
    mu = x @ theta
    for i, sync in enumerate((False, True)):
        ref, ref_regret = two_stage_reference(
            x, theta, pools, proj, noise, sync=sync, alpha=0.7, warm_arms=warm, warm_noise=wn,
            nominate=2,
        )  # fmt: skip
        np.testing.assert_array_equal(np.asarray(arms[i]), ref)
        np.testing.assert_allclose(np.asarray(regret[i]), ref_regret, atol=1e-12)
        # slate regret: best 3 arms minus the slate, never negative
        np.testing.assert_allclose(ref_regret, np.sort(mu)[-3:].sum() - mu[ref].sum(1))
        assert ref_regret.min() >= -1e-12
        assert all(len(set(row)) == 3 for row in ref.tolist())  # no arm twice in a slate
        assert len(np.unique(ref)) > 6  # it explores
    # the two systems differ, so the equalities above test both update rules
    assert not np.array_equal(np.asarray(arms[0]), np.asarray(arms[1]))


def test_single_stage_slates_identical_to_reference_and_to_shared_two_stage():
    """With the ranker's features and all feedback, every nominator holds the ranker's
    statistics; nominating K per pool keeps the global top K, so the two-stage slates
    are the single-stage ones (same tie rule in every stage)."""
    with jax.enable_x64(True):
        inst = make_instance(jax.random.key(2), n_arms=24, dim=5, n_pools=4, shared_features=True)
        noise = 0.3 * jax.random.normal(jax.random.key(3), (60, 3))
        single, single_regret = run_linucb(inst.features, inst.theta, noise, alpha=0.8)
        two, _ = jax.vmap(
            lambda flag: run_two_stage(
                inst, noise, sync=flag, alpha=0.8, share_feedback=True, nominate=3
            )
        )(jnp.array([False, True]))
    ref, ref_regret = linucb_reference(
        np.asarray(inst.features), np.asarray(inst.theta), np.asarray(noise), alpha=0.8
    )
    np.testing.assert_array_equal(np.asarray(single), ref)
    np.testing.assert_allclose(np.asarray(single_regret), ref_regret, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(two[0]), ref)
    np.testing.assert_array_equal(np.asarray(two[1]), ref)
    assert len(np.unique(ref)) > 8


def test_slate_ties_ordered_by_lowest_arm_in_every_stage():
    # arms ±e_i have equal norms: every UCB ties at round 1, in float32 too
    x, theta, pools, proj, inst = tied_instance()
    noise = np.zeros((1, 3), np.float32)
    single, _ = run_linucb(inst.features, inst.theta, noise)
    two, _ = run_two_stage(inst, noise, sync=True, nominate=2)
    ref, _ = two_stage_reference(x, theta, pools, proj, noise, sync=True, nominate=2)
    ref1, _ = linucb_reference(x, theta, noise)
    for arms in (single, two, ref, ref1):
        np.testing.assert_array_equal(np.asarray(arms)[0], [0, 1, 2])


def test_slate_settings_validated():
    inst = BanditInstance(
        jnp.eye(8, 4), jnp.ones(4), jnp.arange(8).reshape(4, 2), jnp.ones((4, 4, 2)), jnp.zeros(0)
    )
    with pytest.raises(ValueError, match="nominate=3 exceeds the largest pool"):
        run_two_stage(inst, jnp.zeros(5), sync=False, nominate=3)
    with pytest.raises(ValueError, match="slate size K=5 exceeds the 4 arms"):
        run_two_stage(inst, jnp.zeros((5, 5)), sync=False)
    with pytest.raises(ValueError, match="noise must have shape"):
        run_two_stage(inst, jnp.zeros((2, 2, 2)), sync=False)
    with pytest.raises(ValueError, match="exceeds the number of arms"):
        run_linucb(inst.features, inst.theta, jnp.zeros((3, 9)))
