import numpy as np
import pytest
import scipy.sparse as sp
from widelab_recsys import (
    hits_at_k,
    implicit_precision_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

# Three users; relevant sets {1, 2}, {0, 3, 4, 5}, {} ; K = 3.
TEST = sp.csr_matrix(
    np.array([[0, 1, 1, 0, 0, 0], [1, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
)
REC = np.array([[2, 0, 1], [3, 1, -1], [0, 1, 2]])


def test_hand_computed_values():
    # user 0: hits at ranks 1 and 3; user 1: hit at rank 1; user 2 skipped (no relevant).
    assert precision_at_k(REC, TEST) == pytest.approx(((2 / 3) + (1 / 3)) / 2)
    assert recall_at_k(REC, TEST) == pytest.approx((2 / 2 + 1 / 4) / 2)
    assert implicit_precision_at_k(REC, TEST) == pytest.approx((2 / 2 + 1 / 3) / 2)
    dcg0 = 1 + 1 / np.log2(4)
    idcg0 = 1 + 1 / np.log2(3)
    dcg1 = 1.0
    idcg1 = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert ndcg_at_k(REC, TEST) == pytest.approx((dcg0 / idcg0 + dcg1 / idcg1) / 2)
    m = ranking_metrics(REC, TEST)
    assert m.n_users == 2 and m.k == 3
    assert m.implicit_precision_pooled == pytest.approx(3 / (2 + 3))
    hits, n_rel = hits_at_k(REC, TEST)
    np.testing.assert_array_equal(n_rel, [2, 4, 0])
    np.testing.assert_array_equal(hits[1], [1, 0, 0])  # -1 never counts


def test_perfect_and_empty_rankings():
    perfect = np.array([[1, 2, 0], [0, 3, 4]])
    sub = TEST[:2]
    assert ndcg_at_k(perfect, sub) == pytest.approx(1.0)
    assert implicit_precision_at_k(perfect, sub) == pytest.approx(1.0)
    assert precision_at_k(perfect, sub) == pytest.approx((2 / 3 + 1) / 2)
    assert precision_at_k(REC[2:], TEST, userids=[2]) == 0.0


class _FixedModel:
    """Duck-typed model returning fixed recommendations (for implicit's evaluation)."""

    def __init__(self, rec):
        self.rec = rec

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True, **kw):
        ids = self.rec[np.asarray(userid)][:, :N].astype(np.int32)
        return ids, -np.arange(N, dtype=np.float32)[None, :].repeat(len(ids), 0)


def test_matches_implicit_evaluation_denominators():
    from implicit.evaluation import ranking_metrics_at_k

    rng = np.random.default_rng(0)
    n_users, n_items, k = 40, 30, 5
    test = sp.csr_matrix((rng.random((n_users, n_items)) < 0.15).astype(np.float32))
    rec = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    train = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    theirs = ranking_metrics_at_k(_FixedModel(rec), train, test, K=k, show_progress=False)
    ours = ranking_metrics(rec, test)
    # implicit's "precision" pools hits over users and divides by Σ min(K, |rel|).
    assert theirs["precision"] == pytest.approx(ours.implicit_precision_pooled, rel=1e-6)
    assert theirs["ndcg"] == pytest.approx(ours.ndcg, rel=1e-5)
    assert ours.precision < ours.implicit_precision_pooled


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="recommended must be a 2-D"):
        precision_at_k(np.arange(3), TEST)
    with pytest.raises(TypeError, match="test_user_items"):
        precision_at_k(REC, TEST.toarray())
    with pytest.raises(IndexError, match="userids out of range"):
        precision_at_k(REC, TEST, userids=[0, 1, 7])
