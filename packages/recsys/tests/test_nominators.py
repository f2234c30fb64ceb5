"""Contract tests run on every nominator (as implicit's recommender_base_test mixin does)."""

import numpy as np
import pytest
import scipy.sparse as sp
from widelab_recsys import (
    ALSNominator,
    BPRNominator,
    LinearNominator,
    TwoTowerNominator,
    nominator_from_state,
    planted_groups,
    svd_features,
    topk_filtered,
)

DATA = planted_groups(60, 2, 10, p_in=0.5, p_out=0.05, test_fraction=0.0, seed=0)
M = DATA.train
FU, GI = svd_features(M, 4)

FACTORIES = {
    "als": lambda: ALSNominator(factors=3, iterations=3),
    "bpr": lambda: BPRNominator(factors=3, iterations=100, learning_rate=0.05),
    "linear": lambda: LinearNominator(rank=2, epochs=80, batch_size=20),
    "two_tower": lambda: TwoTowerNominator(rank=2, hidden=8, epochs=80, batch_size=20),
}


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def fitted(request):
    return FACTORIES[request.param]().fit(M, user_features=FU, item_features=GI)


def test_nominate_shapes_ranges_and_order(fitted):
    users = np.arange(7)
    ids, scores = fitted.nominate(users, M[users], 4, user_features=FU)
    assert ids.shape == scores.shape == (7, 4)
    assert ids.min() >= 0 and ids.max() < M.shape[1]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    for row in ids:
        assert len(set(row)) == len(row)


def test_filter_already_liked(fitted):
    users = np.arange(10)
    ids, _ = fitted.nominate(users, M[users], 5, user_features=FU)
    for r, u in enumerate(users):
        liked = set(M[u].indices)
        assert not liked & set(ids[r])
    unfiltered, _ = fitted.nominate(
        users, M[users], 5, user_features=FU, filter_already_liked_items=False
    )
    assert any(set(M[u].indices) & set(unfiltered[r]) for r, u in enumerate(users))


def test_k_beyond_pool_pads_with_minus_one(fitted):
    ids, scores = fitted.nominate([0], M[[0]], M.shape[1] + 3, user_features=FU)
    n_free = M.shape[1] - M[0].nnz
    assert np.sum(ids[0] >= 0) == n_free
    assert np.all(ids[0, n_free:] == -1) and np.all(np.isneginf(scores[0, n_free:]))


def test_state_roundtrip(fitted):
    cfg, arrays = fitted.state()
    again = nominator_from_state(cfg, arrays)
    users = np.arange(5)
    a = fitted.nominate(users, M[users], 3, user_features=FU)
    b = again.nominate(users, M[users], 3, user_features=FU)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


def test_personalises_on_planted_groups(fitted):
    """Held-in fit: a user's top candidates come mostly from the user's own group."""
    ids, _ = fitted.nominate(np.arange(60), M, 3, user_features=FU)
    own = DATA.item_group[ids] == DATA.user_group[:, None]
    assert own.mean() > 0.75


def test_unfitted_and_unknown_kind():
    for make in FACTORIES.values():
        with pytest.raises(RuntimeError, match="not fitted"):
            make().nominate([0], M[[0]], 2, user_features=FU)
    with pytest.raises(ValueError, match="unknown nominator kind"):
        nominator_from_state({"kind": "nope"}, {})
    with pytest.raises(ValueError, match="user_features"):
        LinearNominator().fit(M)


def test_als_nominator_is_implicit_als():
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    nom = ALSNominator(factors=3, iterations=4, random_state=7).fit(M)
    with threadpool_limits(1, "blas"):
        ref = AlternatingLeastSquares(factors=3, iterations=4, random_state=7)
        ref.fit(M, show_progress=False)
    np.testing.assert_allclose(nom.model.item_factors, ref.item_factors, rtol=1e-5, atol=1e-6)


def test_topk_filtered_by_hand():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 0.0, 0.2, 0.3]], dtype=np.float32)
    liked = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    ids, sc = topk_filtered(scores, liked, 2)
    np.testing.assert_array_equal(ids, [[3, 2], [0, 3]])
    np.testing.assert_allclose(sc, [[0.7, 0.5], [1.0, 0.3]])
