"""Bad input to the metrics, nominators and bandit simulator: clear errors, and
property tests of the metrics on random lists."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from widelab_recsys import (
    ALSNominator,
    LinearNominator,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    simulate_regret,
)
from widelab_recsys.bandits import make_instance

TEST = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 1, 0]], np.float32))


@pytest.mark.parametrize("metric", [ndcg_at_k, recall_at_k, precision_at_k, ranking_metrics])
def test_duplicate_item_in_a_list(metric):
    rec = np.array([[0, 0, 1], [2, 3, -1]])
    with pytest.raises(ValueError, match="recommended row 0 lists item 0 more than once"):
        metric(rec, TEST)


def test_empty_slots_may_repeat():
    rec = np.array([[0, -1, -1], [2, -1, -1]])
    assert recall_at_k(rec, TEST) == pytest.approx((0.5 + 1.0) / 2)


def test_simulate_regret_zero_pools():
    import jax

    with pytest.raises(ValueError, match="n_pools must be an integer >= 1, got 0"):
        simulate_regret(jax.random.key(0), n_pools=0)
    with pytest.raises(ValueError, match="rounds must be an integer >= 1, got 0"):
        simulate_regret(jax.random.key(0), rounds=0)
    with pytest.raises(ValueError, match="n_pools must be an integer >= 1, got 0"):
        make_instance(jax.random.key(0), n_pools=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ALSNominator(factors=0), "factors must be an integer >= 1, got 0"),
        (lambda: ALSNominator(iterations=-1), "iterations must be an integer >= 1, got -1"),
        (lambda: ALSNominator(regularization=float("nan")), "regularization must be a finite"),
        (lambda: LinearNominator(rank=-1), "rank must be an integer >= 0, got -1"),
        (lambda: LinearNominator(learning_rate=0.0), "learning_rate must be a finite number > 0"),
    ],
)
def test_nominator_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@st.composite
def ranking_case(draw):
    n_users = draw(st.integers(1, 5))
    n_items = draw(st.integers(2, 12))
    k = draw(st.integers(1, n_items))
    rows = []
    for _ in range(n_users):
        items = draw(st.permutations(range(n_items)))[:k]
        holes = draw(st.integers(0, k))  # trailing empty slots
        rows.append(list(items[: k - holes]) + [-1] * holes)
    rel = draw(
        st.lists(
            st.lists(st.booleans(), min_size=n_items, max_size=n_items),
            min_size=n_users,
            max_size=n_users,
        )
    )
    return np.array(rows), sp.csr_matrix(np.array(rel, np.float32))


@settings(max_examples=60, deadline=None)
@given(ranking_case())
def test_metrics_of_distinct_lists_lie_in_unit_interval(case):
    rec, test = case
    r = ranking_metrics(rec, test)
    for v in (r.precision, r.recall, r.ndcg, r.implicit_precision, r.implicit_precision_pooled):
        assert 0.0 <= v <= 1.0 + 1e-12
    # recall from first principles
    per_user = [
        len(set(row[row >= 0]) & set(np.flatnonzero(t))) / t.sum()
        for row, t in zip(rec, test.toarray())
        if t.sum() > 0
    ]
    assert r.recall == pytest.approx(np.mean(per_user) if per_user else 0.0)


@settings(max_examples=40, deadline=None)
@given(ranking_case(), st.data())
def test_any_repeated_item_is_an_error(case, data):
    rec, test = case
    row = data.draw(st.integers(0, rec.shape[0] - 1))
    if rec.shape[1] < 2 or (rec[row] >= 0).sum() < 1:
        return
    src = data.draw(st.sampled_from(np.flatnonzero(rec[row] >= 0).tolist()))
    dst = data.draw(st.sampled_from([j for j in range(rec.shape[1]) if j != src]))
    rec = rec.copy()
    rec[row, dst] = rec[row, src]
    with pytest.raises(ValueError, match="more than once"):
        ndcg_at_k(rec, test)


@pytest.mark.parametrize("allocations", [(), ("random", "planted")])
def test_pool_allocation_study_allocations(allocations):
    from widelab_recsys import pool_allocation_study

    with pytest.raises(ValueError, match="allocations must be a non-empty subset"):
        pool_allocation_study(allocations=allocations)
