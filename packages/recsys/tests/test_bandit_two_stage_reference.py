import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_recsys import (
    BanditInstance,
    run_linucb,
    run_two_stage,
    two_stage_reference,
)


def _instance(seed, pools, dim=5, d_j=3, n_warm=4):
    rng = np.random.default_rng(seed)
    n_arms = 1 + max(int(np.max(p)) for p in pools)
    x = rng.normal(size=(n_arms, dim)) / np.sqrt(dim)
    theta = rng.normal(size=dim)
    theta /= np.linalg.norm(theta)
    proj = np.stack([np.linalg.qr(rng.normal(size=(dim, d_j)))[0] for _ in pools])
    width = max(len(p) for p in pools)
    padded = np.full((len(pools), width), -1, np.int64)
    for j, p in enumerate(pools):
        padded[j, : len(p)] = p
    warm = rng.integers(0, n_arms, n_warm)
    return x, theta, padded, proj, warm, 0.3 * rng.normal(size=n_warm)


@pytest.mark.parametrize("sync", [False, True])
def test_two_stage_float64_identical_to_numpy_reference_with_unequal_pools(sync):
    # pools of sizes 1, 3 and 8 (no duplicates, empty slots -1)
    pools = [np.array([5]), np.array([0, 9, 2]), np.array([1, 3, 4, 6, 7, 8, 10, 11])]
    x, theta, padded, proj, warm, wn = _instance(0, pools)
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
    x = np.concatenate([np.eye(4), -np.eye(4)]).astype(np.float32)
    pools = np.array([[6, 2], [5, 0], [7, 1], [3, 4]])  # pool order is not arm order
    proj = np.broadcast_to(np.eye(4, dtype=np.float32), (4, 4, 4))
    theta = np.full(4, 0.5, np.float32)
    inst = BanditInstance(*(jnp.asarray(a) for a in (x, theta, pools, proj, np.zeros(0, int))))
    noise = jnp.zeros(1)
    single, _ = run_linucb(inst.features, inst.theta, noise)
    two, _ = run_two_stage(inst, noise, sync=True)
    ref, _ = two_stage_reference(x, theta, pools, proj, np.zeros(1), sync=True)
    assert int(single[0]) == int(two[0]) == ref[0] == 0
