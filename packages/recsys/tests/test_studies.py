import numpy as np
import pytest
from widelab_core.testing import standard_error
from widelab_recsys import (
    hits_at_k,
    independent_vs_aligned_study,
    planted_groups,
    pool_allocation_study,
)


@pytest.mark.slow
def test_study1_independent_on_par_with_random_aligned_near_perfect():
    r = independent_vs_aligned_study(n_users=300, items_per_group=30, k=5, seed=0)
    n = 300
    indep, aligned, rnd = r["independent_mixed"], r["aligned"], r["uniform_random"]
    # Independent popularity nominators on mixed pools nominate the majority group only:
    # precision equals the majority share (per-user precision is 0 or 1 here).
    assert indep.precision == pytest.approx(r["majority_share"], abs=0.02)
    se = np.sqrt(0.25 / n)  # per-user precision in [0, 1]: SD <= 1/2
    assert abs(indep.precision - rnd.precision) < 0.1
    assert aligned.precision > 0.75
    assert aligned.precision - indep.precision > 10 * se


@pytest.mark.slow
def test_study2_learned_pools_beat_random_pools():
    # the report's quick settings (shared compilations); k-means pools are not asserted on
    data = planted_groups(400, 8, 25, p_in=0.3, p_out=0.01, test_fraction=0.3, seed=0)
    r = pool_allocation_study(
        data, moe_epochs=20, ranker_epochs=8, seed=0, allocations=("random", "learned")
    )
    assert set(r["metrics"]) == {"random", "learned"}
    assert r["completeness"]["learned"] > 0.8
    assert r["completeness"]["random"] < 0.2
    m = r["metrics"]
    assert m["learned"].recall > m["random"].recall
    # Paired per-user comparison of precision@10 on the same held-out set.
    h_learned, n_rel = hits_at_k(r["recommended"]["learned"], data.test)
    h_random, _ = hits_at_k(r["recommended"]["random"], data.test)
    keep = n_rel > 0
    diff = h_learned[keep].mean(axis=1) - h_random[keep].mean(axis=1)
    assert diff.mean() == pytest.approx(m["learned"].precision - m["random"].precision)
    assert diff.mean() > 3 * standard_error(diff)
