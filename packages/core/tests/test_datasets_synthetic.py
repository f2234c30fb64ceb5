"""Synthetic MovieLens- and Last.fm-like data: shapes, seeds, planted structure."""

import numpy as np
import pytest
from scipy import stats
from widelab_core.datasets import InteractionData, synthetic_lastfm, synthetic_movielens
from widelab_core.datasets.synthetic import MINORITY_SHARE, ML100K_RATING_COUNTS
from widelab_core.testing import standard_error


def top_decile_share(data: InteractionData) -> float:
    degree = np.sort(data.matrix.getnnz(axis=0))[::-1]
    return degree[: max(1, len(degree) // 10)].sum() / degree.sum()


def in_cluster_share(data: InteractionData) -> np.ndarray:
    m = data.matrix.tocoo()
    return data.user_attributes["cluster"][m.row] == data.item_attributes["cluster"][m.col]


def test_default_movielens_has_the_shape_of_ml100k():
    data = synthetic_movielens()
    assert data.matrix.shape == (943, 1682) and data.n_interactions == 100_000
    assert data.user_ids.tolist() == list(range(1, 944))
    assert data.item_attributes["genres"].shape == (1682, 19)
    assert data.matrix.dtype == np.float32 and data.matrix.has_canonical_format
    # Ratings follow the ML-100K histogram exactly (quantile cuts of a continuous score).
    counts = np.bincount(data.matrix.data.astype(int), minlength=6)[1:]
    np.testing.assert_array_equal(counts, ML100K_RATING_COUNTS)
    assert data.matrix.getnnz(axis=1).min() >= 1


@pytest.mark.parametrize("make", [synthetic_movielens, synthetic_lastfm])
def test_sizes_seeds_and_errors(make):
    a = make(60, 90, n_interactions=1234, seed=3)
    b = make(60, 90, n_interactions=1234, seed=3)
    c = make(60, 90, n_interactions=1234, seed=4)
    assert a.matrix.shape == (60, 90) and a.n_interactions == 1234
    assert (a.matrix != b.matrix).nnz == 0
    for key in a.user_attributes:
        np.testing.assert_array_equal(a.user_attributes[key], b.user_attributes[key])
    assert (a.matrix != c.matrix).nnz > 0
    assert make(30, 40, density=0.25).n_interactions == 300
    assert make(5, 4, density=1.0).matrix.getnnz() == 20  # full matrix
    with pytest.raises(ValueError, match="not both"):
        make(10, 10, n_interactions=20, density=0.2)
    with pytest.raises(ValueError, match="must lie between n_users=10"):
        make(10, 10, n_interactions=5)
    with pytest.raises(ValueError, match="n_items must be a positive integer"):
        make(10, 0)
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\]"):
        make(10, 10, density=1.5)


def test_lastfm_ids_and_play_counts():
    data = synthetic_lastfm(300, 400, seed=1)
    assert data.n_interactions == 48 * 300
    ids = data.user_ids.tolist()
    assert ids == sorted(ids) and len(set(ids)) == 300 and all(len(u) == 40 for u in ids)
    assert data.item_ids[0] == "Synthetic artist 001"
    plays = data.matrix.data
    assert plays.min() >= 1 and np.array_equal(plays, np.round(plays))
    # Heavy-tailed plays: mean well above median, as in Last.fm-360K.
    assert plays.mean() > 1.5 * np.median(plays)


@pytest.mark.parametrize("make", [synthetic_movielens, synthetic_lastfm])
def test_binary_attribute_split_is_71_29(make):
    n = 6000
    data = make(n, 40, n_interactions=4 * n, seed=11)
    share = np.mean(data.user_attributes["gender"] == "F")
    se = np.sqrt(MINORITY_SHARE * (1 - MINORITY_SHARE) / n)
    assert abs(share - MINORITY_SHARE) < 3 * se, (share, se)
    assert set(np.unique(data.user_attributes["gender"])) == {"F", "M"}


def test_popularity_is_heavy_tailed_and_follows_the_planted_weights():
    kw = dict(n_interactions=30_000, taste_strength=0.0, seed=5)
    zipf = synthetic_movielens(500, 800, **kw)
    flat = synthetic_movielens(500, 800, popularity_exponent=0.0, **kw)
    # Uniform choice: the top decile holds about 10 % (a little more from sampling noise);
    # Zipf(1) on 800 items puts about half of the weight on the top 80.
    assert top_decile_share(flat) < 0.13
    assert top_decile_share(zipf) > 0.4
    degree = zipf.matrix.getnnz(axis=0)
    rho = stats.spearmanr(degree, zipf.item_attributes["popularity"]).statistic
    assert rho > 0.9
    # In the tail, where few users exhaust their draws on an item, inclusion is about
    # proportional to the Zipf weight: log degree falls with slope about -1 in log rank.
    # (The head is flattened: a user picks an item at most once, as in MovieLens.)
    rank = np.argsort(np.argsort(-zipf.item_attributes["popularity"])) + 1
    tail = (rank >= 100) & (degree > 0)
    slope = np.polyfit(np.log(rank[tail]), np.log(degree[tail]), 1)[0]
    assert -1.15 < slope < -0.8, slope
    head = (rank <= 60) & (degree > 0)
    assert np.polyfit(np.log(rank[head]), np.log(degree[head]), 1)[0] > slope


def test_user_activity_is_lognormal():
    sigma = 0.5
    data = synthetic_lastfm(3000, 2000, n_interactions=150_000, activity_sigma=sigma, seed=2)
    logs = np.log(data.matrix.getnnz(axis=1))
    # The std of n normal draws has standard error sigma / sqrt(2 n); rounding counts of
    # about 50 to integers adds at most log(1 + 1 / 25) in quadrature.
    se = sigma / np.sqrt(2 * len(logs))
    assert abs(logs.std() - sigma) < 4 * se + 0.04
    assert abs(stats.skew(logs)) < 4 * np.sqrt(6 / len(logs)) + 0.05


def test_tastes_are_clustered():
    k = 6
    clustered = synthetic_movielens(400, 600, n_interactions=12_000, n_clusters=k, seed=7)
    plain = synthetic_movielens(
        400, 600, n_interactions=12_000, n_clusters=k, taste_strength=0.0, seed=7
    )
    hits = in_cluster_share(clustered)
    base = in_cluster_share(plain)
    # Without taste, a chosen item shares the user's cluster with probability ~1/k.
    assert abs(base.mean() - 1 / k) < 4 * standard_error(base) + 0.02
    assert hits.mean() > 2.5 / k
    labels = clustered.item_attributes["cluster"]
    assert labels.shape == (600,) and set(np.unique(labels)) == set(range(k))
