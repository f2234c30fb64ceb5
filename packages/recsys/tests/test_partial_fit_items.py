"""TwoStageRecommender.partial_fit_items: new items without a refit, checked against the
closed-form ALS item step and the fold-in identity of the SVD features."""

import numpy as np
import pytest
import scipy.sparse as sp
from widelab_recsys import (
    ALSNominator,
    BPRNominator,
    LinearNominator,
    MLPRanker,
    TwoStageRecommender,
)

RNG = np.random.default_rng(0)
M = sp.csr_matrix((RNG.random((50, 24)) < 0.2).astype(np.float32))


def _model(nominators):
    return TwoStageRecommender(
        nominators=nominators,
        ranker=MLPRanker(embedding_dim=6, hidden=4, epochs=2),
        candidates_per_nominator=5,
        feature_dim=4,
    ).fit(M)


def _als_item_step(x, users, confidence, reg):
    """Hu, Koren & Volinsky (2008), eq. 5 for one item, in float64:
    y = (XᵀX + Xᵀ(C - I)X + λI)⁻¹ Xᵀ C p with p = 1 on the item's users."""
    x = x.astype(np.float64)
    a = x.T @ x + reg * np.eye(x.shape[1])
    a += (x[users].T * (confidence - 1.0)) @ x[users]
    return np.linalg.solve(a, x[users].T @ np.full(len(users), confidence))


def test_new_items_closed_form_step_pools_features_and_serving(tmp_path):
    noms = [ALSNominator(factors=3, iterations=2, alpha=2.0, random_state=j) for j in range(2)]
    model = _model(noms)
    old_pools, old_features = model.pools.copy(), model.item_features.copy()
    by_item = M.T.tocsr()
    # new item 24 copies item 5's users; new item 25 copies item 11's, pinned to pool 1
    cols = sp.vstack([by_item[[5, 11]], by_item[[7]]]).tocsr()
    ids = np.array([24, 25, 7])
    # default rule: the pool whose mean item feature is nearest (brute force here)
    d = model.feature_dim
    g = (
        np.asarray((cols.toarray() * model.user_weight[None, :]) @ model.user_features[:, -d:])
        / model.item_fold_in[None, :]
    )
    centroid = [old_features[old_pools == j].mean(axis=0) for j in range(2)]
    nearest = int(np.argmin([((g[0] - c) ** 2).sum() for c in centroid]))
    model.partial_fit_items(ids, cols, pools=None)
    assert model.pools[24] == nearest
    np.testing.assert_array_equal(model.pools[:24], old_pools)  # known items keep pools
    np.testing.assert_allclose(model.item_features[ids], g, rtol=1e-5, atol=1e-6)
    # the fold-in reproduces the SVD features of a known column (exact SVD identity)
    np.testing.assert_allclose(model.item_features[24], old_features[5], atol=1e-4)
    # every nominator took the closed-form ALS item step for its items (c = alpha * 1)
    for j, nom in enumerate(model.nominators):
        members = model._pool_items(j)
        for gid, row in zip(ids, cols):
            if model.pools[gid] != j:
                continue
            want = _als_item_step(nom.model.user_factors, row.indices, 2.0, 0.01)
            got = nom.model.item_factors[np.searchsorted(members, gid)]
            np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
        assert nom.model.item_factors.shape[0] == members.size
    assert model.ranker.params["Q"].shape[0] == 26
    assert not np.asarray(model.ranker.params["Q"])[24:].any()
    # serving sees the extended catalogue: restricted to the new ids, users get them
    rows = sp.hstack([M[:3], sp.csr_matrix((3, 2))]).tocsr()
    got, _ = model.recommend([0, 1, 2], rows, N=2, items=[24, 25])
    assert {frozenset(r) for r in got.tolist()} == {frozenset({24, 25})}
    model.save(tmp_path / "m.npz")
    back = TwoStageRecommender.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.item_fold_in, model.item_fold_in)
    np.testing.assert_array_equal(back.user_weight, model.user_weight)


def test_partial_fit_items_pinned_pool_and_bad_input():
    model = _model([ALSNominator(factors=3, iterations=2, random_state=j) for j in range(2)])
    by_item = M.T.tocsr()
    model.partial_fit_items([24], by_item[[3]], pools=[1])
    assert model.pools[24] == 1
    with pytest.raises(ValueError, match="contiguously from 25"):
        model.partial_fit_items([27], by_item[[3]])
    with pytest.raises(ValueError, match="distinct non-negative"):
        model.partial_fit_items([2, 2], by_item[[3, 4]])
    with pytest.raises(ValueError, match=r"expected shape \(1, 50\)"):
        model.partial_fit_items([25], M[[3]])
    with pytest.raises(ValueError, match="pools values must lie in 0..1"):
        model.partial_fit_items([25], by_item[[3]], pools=[2])
    bpr = _model([ALSNominator(factors=3, iterations=2), BPRNominator(factors=3, iterations=2)])
    before = bpr.item_features.copy()
    with pytest.raises(NotImplementedError, match="BPRNominator"):
        bpr.partial_fit_items([24], by_item[[3]])
    np.testing.assert_array_equal(bpr.item_features, before)  # nothing changed


def test_new_item_reaches_a_jax_nominator_through_the_recommender():
    model = _model([LinearNominator(rank=1, epochs=2, seed=j) for j in range(2)])
    sizes = [nom.n_items for nom in model.nominators]
    model.partial_fit_items([24], M.T.tocsr()[[5]], pools=[1])
    assert [nom.n_items for nom in model.nominators] == [sizes[0], sizes[1] + 1]
    assert np.isfinite(model.nominators[1].params["b"][sizes[1]])
    rows = sp.hstack([M[:3], sp.csr_matrix((3, 1))]).tocsr()  # the catalogue grew by one
    ids, _ = model.recommend(np.arange(3), rows, N=1, items=[24])
    np.testing.assert_array_equal(ids, [[24], [24], [24]])
