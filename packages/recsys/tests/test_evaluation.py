import numpy as np
import pytest
import scipy.sparse as sp
from widelab_recsys import (
    auc_at_k,
    leave_k_out_split,
    map_at_k,
    ranking_metrics,
    ranking_metrics_at_k,
)


def _hand_auc(rec_row, rel, n_items):
    """AUC@K by counting (positive, negative) pairs; unranked items tie at the bottom."""
    rank = {item: r for r, item in enumerate(rec_row) if item >= 0}
    bottom = len(rec_row)
    total = 0.0
    for p in rel:
        for q in set(range(n_items)) - set(rel):
            rp, rq = rank.get(p, bottom), rank.get(q, bottom)
            total += 1.0 if rp < rq else (0.5 if rp == rq else 0.0)
    return total / (len(rel) * (n_items - len(rel)))


def test_map_and_auc_by_hand():
    test = sp.csr_matrix(
        np.array([[0, 1, 1, 0, 0, 0], [1, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]], np.float32)
    )
    rec = np.array([[2, 0, 1], [3, 1, -1], [0, 1, 2]])
    ap0 = (1 / 1 + 2 / 3) / 2
    ap1 = (1 / 1) / 3
    assert map_at_k(rec, test) == pytest.approx((ap0 + ap1) / 2)
    auc = (_hand_auc(rec[0], [1, 2], 6) + _hand_auc(rec[1], [0, 3, 4, 5], 6)) / 2
    assert auc_at_k(rec, test) == pytest.approx(auc)


def test_new_metrics_reject_duplicate_ids():
    test = sp.csr_matrix(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="row 1 lists item 2 more than once"):
        map_at_k(np.array([[0, 1], [2, 2], [1, 0], [3, -1]]), test)
    with pytest.raises(ValueError, match="more than once"):
        auc_at_k(np.array([[0, 0], [1, 2], [2, 1], [3, -1]]), test)
    assert map_at_k(np.array([[0, -1], [1, -1], [2, -1], [3, -1]]), test) == 1.0


class _Fixed:
    def __init__(self, rec):
        self.rec = rec

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True, **kw):
        ids = self.rec[np.asarray(userid)][:, :N].astype(np.int32)
        return ids, -np.arange(N, dtype=np.float32)[None, :].repeat(len(ids), 0)


def test_equals_implicit_on_fixed_rankings():
    from implicit.evaluation import ranking_metrics_at_k as theirs_fn

    rng = np.random.default_rng(0)
    n_users, n_items, k = 50, 30, 6
    test = sp.csr_matrix((rng.random((n_users, n_items)) < 0.15).astype(np.float32))
    rec = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    train = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    theirs = theirs_fn(_Fixed(rec), train, test, K=k, show_progress=False)
    ours = ranking_metrics_at_k(_Fixed(rec), train, test, K=k)
    for name in ("precision", "map", "ndcg", "auc"):
        assert ours[name] == pytest.approx(theirs[name], rel=1e-6), name
    keep = np.diff(test.indptr) > 0
    assert ours["map"] == pytest.approx(map_at_k(rec[keep], test[keep]), rel=1e-12)
    assert ours["auc"] == pytest.approx(auc_at_k(rec[keep], test[keep]), rel=1e-12)
    assert ours["ndcg"] == pytest.approx(ranking_metrics(rec, test).ndcg, rel=1e-12)


def test_equals_implicit_on_an_als_model_and_split():
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k as theirs_fn
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    m = sp.csr_matrix((rng.random((80, 40)) < 0.2).astype(np.float32))
    train, test = leave_k_out_split(m, K=2, random_state=3)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=4, iterations=3, random_state=0)
        model.fit(train, show_progress=False)
        theirs = theirs_fn(model, train, test, K=5, show_progress=False)
        ours = ranking_metrics_at_k(model, train, test, K=5)
    for name in ("precision", "map", "ndcg", "auc"):
        assert ours[name] == pytest.approx(theirs[name], rel=1e-6), name


def test_leave_k_out_split_rules_match_implicit():
    from implicit.evaluation import leave_k_out_split as theirs

    rng = np.random.default_rng(2)
    m = sp.csr_matrix((rng.random((60, 25)) < 0.12) * rng.integers(1, 5, (60, 25)), dtype="f4")
    counts = np.diff(m.indptr)
    for k in (1, 2):
        train, test = leave_k_out_split(m, K=k, random_state=0)
        t_train, t_test = theirs(m, K=k, random_state=0)
        np.testing.assert_array_equal(np.diff(test.indptr), np.diff(t_test.indptr))
        np.testing.assert_array_equal(np.diff(test.indptr), np.where(counts > k + 1, k, 0))
        assert (train + test != m).nnz == 0
        assert test.multiply(train).nnz == 0
        assert train.dtype == test.dtype == m.dtype
    train, test = leave_k_out_split(m, K=1, train_only_size=0.5, random_state=0)
    n_active = int((counts > 0).sum())
    assert np.diff(test.indptr).sum() <= n_active - n_active // 2
    assert (train + test != m).nnz == 0


def test_leave_k_out_split_uniform_choice():
    # One user, 5 items, K=1: each item is held out with probability 1/5.
    m = sp.csr_matrix(np.ones((1, 5), np.float32))
    rng = np.random.default_rng(0)
    n = 2000
    counts = np.zeros(5)
    for _ in range(n):
        _, test = leave_k_out_split(m, K=1, random_state=rng)
        counts[test.indices] += 1
    se = np.sqrt(n * 0.2 * 0.8)
    assert np.all(np.abs(counts - n / 5) < 4 * se)


def test_split_bad_inputs():
    m = sp.csr_matrix(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="K must be a positive int; got 0"):
        leave_k_out_split(m, K=0)
    with pytest.raises(ValueError, match=r"train_only_size must lie in \[0, 1\); got 1.0"):
        leave_k_out_split(m, train_only_size=1.0)
    with pytest.raises(TypeError, match="ratings must be a scipy.sparse"):
        leave_k_out_split(np.ones((2, 3)))
