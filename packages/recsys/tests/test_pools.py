import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, completeness_score
from widelab_recsys import kmeans_pools, learn_pools, planted_groups, random_pools, svd_features


def test_random_pools_balanced_and_seeded():
    p = random_pools(103, 4, seed=3)
    assert p.shape == (103,)
    counts = np.bincount(p, minlength=4)
    assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(p, random_pools(103, 4, seed=3))
    assert not np.array_equal(p, random_pools(103, 4, seed=4))


def test_kmeans_pools_recover_separated_clusters():
    rng = np.random.default_rng(0)
    centers = 10 * rng.normal(size=(3, 5))
    labels = np.repeat(np.arange(3), 20)
    x = centers[labels] + rng.normal(size=(60, 5))
    assert adjusted_rand_score(labels, kmeans_pools(x, 3, seed=0)) == pytest.approx(1.0)


def test_pool_errors():
    with pytest.raises(ValueError, match="n_pools"):
        random_pools(5, 0)
    with pytest.raises(ValueError, match="exceeds the number of items"):
        random_pools(3, 4)
    with pytest.raises(ValueError, match="item_embeddings"):
        kmeans_pools(np.zeros(5), 2)


def test_learned_pools_keep_planted_groups_whole():
    """8 planted groups, 4 rank-1 experts: each expert can serve two groups (the two signs
    of its one direction), so the MoE gate should put every group inside a single pool
    (completeness 1) with balanced pools (load-balancing term)."""
    d = planted_groups(400, 8, 10, p_in=0.4, p_out=0.01, test_fraction=0.0, seed=0)
    fu, gi = svd_features(d.train, 8)
    res = learn_pools(d.train, 4, user_features=fu, item_features=gi, rank=1, epochs=60)
    assert completeness_score(d.item_group, res.pools) > 0.9
    assert np.bincount(res.pools, minlength=4).min() >= 10
    assert res.temperatures[0] == pytest.approx(1.0) and res.temperatures[-1] == pytest.approx(0.05)
    assert res.losses[-1] < res.losses[0]
    # the final gate is (nearly) hard
    assert res.gate.max(axis=1).mean() > 0.85
    # a random balanced allocation is far from that
    assert completeness_score(d.item_group, random_pools(80, 4)) < 0.3
