"""TwoStageRecommender and ALSNominator against implicit's behaviour on the same factors."""

import numpy as np
import pytest
import scipy.sparse as sp
from widelab_recsys import ALSNominator, MLPRanker, TwoStageRecommender

RNG = np.random.default_rng(0)
M = sp.csr_matrix((RNG.random((50, 24)) < 0.2).astype(np.float32))


@pytest.fixture(scope="module")
def dot_model():
    """Two pools whose nominators pass on every item, and a ranker whose score is the dot
    product ``e_u·e_i`` (MLP output weight and item bias zeroed): the two-stage system
    then ranks exactly as a single-stage factor model on the ranker's embeddings."""
    model = TwoStageRecommender(
        nominators=[ALSNominator(factors=3, iterations=2, random_state=j) for j in range(2)],
        ranker=MLPRanker(embedding_dim=6, hidden=4, epochs=2),
        candidates_per_nominator=24,
        feature_dim=4,
    ).fit(M)
    p = dict(model.ranker.params)
    p["w2"] = np.zeros_like(p["w2"])
    p["bi"] = np.zeros_like(p["bi"])
    model.ranker.params = p
    return model


def _implicit_twin(model):
    from implicit.cpu.als import AlternatingLeastSquares

    eu, ei = model._ranker_embeddings()
    twin = AlternatingLeastSquares(factors=eu.shape[1])
    twin.user_factors = np.ascontiguousarray(eu, np.float32)
    twin.item_factors = np.ascontiguousarray(ei, np.float32)
    return twin


def test_recommend_matches_implicit_with_filters_and_items(dot_model):
    twin = _implicit_twin(dot_model)
    users = np.arange(12)
    cases = [
        {},
        {"filter_already_liked_items": False},
        {"filter_items": [0, 3, 5, 7]},
        {"items": [1, 2, 4, 8, 9, 15, 20]},
        {"items": [23, 2, 4], "filter_already_liked_items": False},
    ]
    for kw in cases:
        ours = dot_model.recommend(users, M[users], N=5, **kw)
        theirs = twin.recommend(users, M[users], N=5, **kw)
        assert ours[0].shape == theirs[0].shape, kw
        # implicit pads rows with too few unfiltered items with filtered ones at -FLT_MAX;
        # the two-stage system leaves those slots empty (id -1, score -inf)
        empty = theirs[1] < -1e38
        np.testing.assert_array_equal(ours[0][~empty], theirs[0][~empty], err_msg=str(kw))
        assert np.all(ours[0][empty] == -1) and np.all(np.isneginf(ours[1][empty]))
        np.testing.assert_allclose(ours[1][~empty], theirs[1][~empty], rtol=1e-4, atol=1e-5)
    one_ids, _ = dot_model.recommend(3, M[3], N=4, items=[1, 2, 4, 8, 9])
    assert one_ids.shape == (4,)
    np.testing.assert_array_equal(one_ids, twin.recommend(3, M[3], N=4, items=[1, 2, 4, 8, 9])[0])


def test_recommend_argument_errors(dot_model):
    with pytest.raises(ValueError, match="Can't set both items and filter_items"):
        dot_model.recommend([0], M[[0]], items=[1], filter_items=[2])
    with pytest.raises(IndexError, match="items holds item ids outside 0..23"):
        dot_model.recommend([0], M[[0]], items=[1, 24])
    with pytest.raises(IndexError, match="userid 50 is unknown"):
        dot_model.recommend([50], M[[0]])


def test_similar_items_and_users_match_implicit(dot_model):
    twin = _implicit_twin(dot_model)
    for args in [(3,), ([0, 5, 7],)]:
        for kw in [{}, {"filter_items": [1, 2]}, {"items": [0, 3, 4, 5, 6, 7, 11]}]:
            ours = dot_model.similar_items(*args, N=4, **kw)
            theirs = twin.similar_items(*args, N=4, **kw)
            np.testing.assert_array_equal(ours[0], theirs[0])
            np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5)
    ours = dot_model.similar_users([2, 9], N=5, users=np.arange(0, 40, 2))
    theirs = twin.similar_users([2, 9], N=5, users=np.arange(0, 40, 2))
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5)
    assert dot_model.similar_items(6, N=3)[0][0] == 6
    with pytest.raises(NotImplementedError, match="recalculate_item"):
        dot_model.similar_items(0, recalculate_item=True)


def test_nominator_delegates_to_implicit():
    nom = ALSNominator(factors=3, iterations=2).fit(M)
    theirs = nom.model
    np.testing.assert_array_equal(
        nom.similar_items([1, 2], N=3)[0], theirs.similar_items([1, 2], N=3)[0]
    )
    ids, _ = nom.recommend(np.arange(4), M[:4], N=3, filter_items=[0, 1])
    np.testing.assert_array_equal(
        ids, theirs.recommend(np.arange(4), M[:4], N=3, filter_items=[0, 1])[0]
    )
    before = np.array(theirs.user_factors[:2])
    nom.partial_fit_users([50, 51], M[:2])
    assert theirs.user_factors.shape[0] == 52
    np.testing.assert_allclose(theirs.user_factors[50:], nom.recalculate_user([0, 1], M[:2]))
    np.testing.assert_array_equal(theirs.user_factors[:2], before)


def test_recalculate_user_and_partial_fit_users_agree():
    model = TwoStageRecommender(
        nominators=[ALSNominator(factors=3, iterations=2, random_state=j) for j in range(2)],
        ranker=MLPRanker(embedding_dim=6, hidden=4, epochs=2),
        candidates_per_nominator=5,
        feature_dim=4,
    ).fit(M)
    rows = M[[4, 9, 30]]
    new = np.array([50, 51, 52])
    # recalculate_user: ids need not be known; the answer depends on the rows only
    rec_a = model.recommend(new, rows, N=4, recalculate_user=True)
    rec_b = model.recommend(np.array([7, 8, 9]), rows, N=4, recalculate_user=True)
    np.testing.assert_array_equal(rec_a[0], rec_b[0])
    model.partial_fit_users(new, rows)
    assert model.user_features.shape[0] == 53
    assert model.ranker.params["P"].shape[0] == 53
    fitted = model.recommend(new, rows, N=4)
    np.testing.assert_array_equal(fitted[0], rec_a[0])
    np.testing.assert_allclose(fitted[1], rec_a[1], rtol=1e-5, atol=1e-6)
    # the folded-in features of a known row are close to that user's fitted features
    np.testing.assert_allclose(model.user_features[50], model.user_features[4], atol=0.15)
    # the ALS nominators took implicit's least-squares user step on their pools
    for j, nom in enumerate(model.nominators):
        cols = model._pool_items(j)
        np.testing.assert_allclose(
            nom.model.user_factors[50:53],
            nom.model.recalculate_user([0, 1, 2], rows[:, cols]),
            rtol=1e-5,
        )
    with pytest.raises(ValueError, match="distinct non-negative"):
        model.partial_fit_users([1, 1], M[[1, 1]])
