"""Importance-weighted nominator training (weights from the ranker's softmax policy)."""

import numpy as np
import pytest
import scipy.sparse as sp
from widelab_recsys import (
    ALSNominator,
    LinearNominator,
    MLPRanker,
    TwoStageRecommender,
    ranker_importance_weights,
)

RNG = np.random.default_rng(0)
M = sp.csr_matrix((RNG.random((50, 24)) < 0.2).astype(np.float32))


def test_weighted_popularity_nominator_reaches_closed_form_optimum():
    """Rank 0 (``s = b_i``): the weighted multinomial likelihood is maximised by
    ``softmax(b)_i = Σ_u w_ui y_ui / Σ_ui w_ui y_ui`` (the weighted item frequency)."""
    rng = np.random.default_rng(1)
    y = sp.csr_matrix((rng.random((20, 6)) < 0.5).astype(np.float32))
    w = y.copy()
    w.data = rng.gamma(0.5, 2.0, size=w.nnz).astype(np.float32)
    fu = np.zeros((20, 1), np.float32)
    gi = np.zeros((6, 1), np.float32)
    nom = LinearNominator(rank=0, epochs=400, batch_size=20, learning_rate=0.1, l2=0.0)
    nom.fit(y, user_features=fu, item_features=gi, sample_weight=w)
    b = nom.params["b"][:6].astype(np.float64)
    got = np.exp(b - b.max()) / np.exp(b - b.max()).sum()
    want = np.asarray(w.multiply(y).sum(axis=0)).ravel()
    want /= want.sum()
    unweighted = np.asarray(y.sum(axis=0)).ravel() / y.sum()
    assert np.abs(want - unweighted).max() > 0.05  # the weights matter here
    np.testing.assert_allclose(got, want, atol=2e-3)


@pytest.fixture(scope="module")
def weighted_model():
    return TwoStageRecommender(
        nominators=[ALSNominator(factors=3, iterations=2, random_state=j) for j in range(2)],
        ranker=MLPRanker(embedding_dim=6, hidden=4, epochs=2),
        candidates_per_nominator=5,
        feature_dim=4,
        nominator_weighting="ranker",
        weighting_temperature=0.5,
    ).fit(M)


def test_weights_are_the_ranker_softmax_on_observed_pairs(weighted_model):
    model = weighted_model
    fu, gi = model.user_features, model.item_features
    w = ranker_importance_weights(model.ranker, M, fu, gi, temperature=0.5, block=7)
    s = model.ranker.score(np.arange(50), np.tile(np.arange(24), (50, 1)), fu, gi).astype(
        np.float64
    )
    p = np.exp((s - s.max(axis=1, keepdims=True)) / 0.5)
    p /= p.sum(axis=1, keepdims=True)
    coo = M.tocoo()
    want = p[coo.row, coo.col] / p[coo.row, coo.col].mean()
    got = np.asarray(w[coo.row, coo.col]).ravel()
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert (w != 0).nnz == M.nnz


def test_two_stage_fits_nominators_on_ranker_weighted_confidences(weighted_model, tmp_path):
    model = weighted_model
    w = ranker_importance_weights(
        model.ranker, M, model.user_features, model.item_features, temperature=0.5
    )
    for j, nom in enumerate(model.nominators):
        cols = model._pool_items(j)
        twin = ALSNominator(factors=3, iterations=2, random_state=j)
        twin.fit(sp.csr_matrix(M[:, cols].multiply(w[:, cols])))
        np.testing.assert_allclose(nom.model.item_factors, twin.model.item_factors, rtol=1e-5)
    model.save(tmp_path / "w.npz")
    back = TwoStageRecommender.load(tmp_path / "w.npz")
    assert (back.nominator_weighting, back.weighting_temperature) == ("ranker", 0.5)
    with pytest.raises(ValueError, match="nominator_weighting must be one of"):
        TwoStageRecommender(nominator_weighting="propensity")
    with pytest.raises(ValueError, match="weighting_temperature"):
        TwoStageRecommender(weighting_temperature=0.0)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        ALSNominator(factors=2, iterations=1).fit(M, sample_weight=M[:, :3])
