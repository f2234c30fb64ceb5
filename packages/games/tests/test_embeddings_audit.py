"""Recommenders fitted to ratings, the audit metrics and the sweep."""

import numpy as np
import pytest
import scipy.sparse as sp
from widelab_games import (
    concentration,
    creator_neighbourhood,
    demand_users,
    fit_embeddings,
    load_ratings,
    make_game,
    normalized_ratings,
    plot_tau_sweep,
    producer_centric,
    run_sweep,
    user_centric,
)
from widelab_games.embeddings import Embeddings
from widelab_games.study import SweepConfig


def _low_rank(seed=0, m=60, k=40, d=2, density=0.5):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(m, d)), rng.normal(size=(k, d))
    full = 3.0 + u @ v.T
    mask = rng.random((m, k)) < density
    rows, cols = np.nonzero(mask)
    return sp.csr_matrix((full[rows, cols], (rows, cols)), shape=(m, k)), full


@pytest.mark.parametrize("model, best", [("pmf", 1e-3), ("two_tower", 0.1)])
def test_gradient_models_recover_low_rank_ratings_and_cv_picks_the_penalty(model, best):
    """Noise-free rank-2 ratings: PMF needs almost no penalty; the two-tower model's free
    id embeddings overfit without one (held-out RMSE far above the ratings' spread), so
    cross-validation must pick the middle value; a huge penalty underfits both."""
    r, full = _low_rank()
    emb = fit_embeddings(r, model, 2, regs=[1e-3, 0.1, 30.0], n_folds=2, steps=600)
    assert emb.users.shape == (60, 2) and emb.items.shape == (40, 2)
    assert emb.reg == best
    assert emb.val_rmse < 0.35 * full.std()
    assert emb.cv[30.0] > 0.9 * full.std()


def test_nmf_is_non_negative_and_cv_table_complete():
    r, _ = _low_rank(1)
    r.data = np.abs(r.data)
    emb = fit_embeddings(r, "nmf", 3, regs=[0.0, 0.1], n_folds=2)
    assert (emb.users >= 0).all() and (emb.items >= 0).all()
    assert set(emb.cv) == {0.0, 0.1} and np.isfinite(emb.val_rmse)


def test_embedding_errors():
    r, _ = _low_rank()
    with pytest.raises(ValueError, match="model must be one of"):
        fit_embeddings(r, "svd", 2)
    with pytest.raises(ValueError, match="dim"):
        fit_embeddings(r, "pmf", 0)
    bad = r.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match=r"non-finite value nan at user \d+, item \d+"):
        fit_embeddings(bad, "pmf", 2)
    with pytest.raises(ValueError, match="non-empty"):
        fit_embeddings(sp.csr_matrix((3, 3)), "pmf", 2)
    neg = r.copy()
    neg.data -= 10
    with pytest.raises(ValueError, match="non-negative"):
        fit_embeddings(neg, "nmf", 2, regs=[0.0])
    zero = Embeddings("nmf", np.zeros((3, 2)), np.ones((2, 2)), 0.0)
    with pytest.raises(ValueError, match="all 3 user embeddings"):
        demand_users(zero)


def test_audit_metrics_on_hand_instances():
    users = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    cos = normalized_ratings(users, np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(cos[:, 0], np.sqrt(0.5))
    game = make_game(users, 2, 0.0)
    same = np.array([[1.0, 1.0], [1.0, 1.0]])
    c = concentration(game, same)
    assert c["mean_pairwise_cos"] == pytest.approx(1.0) and c["n_distinct"] == 1
    split = np.array([[1.0, 0.0], [0.0, 1.0]])
    c = concentration(game, split)
    assert c["mean_pairwise_cos"] == pytest.approx(0.0, abs=1e-12) and c["n_distinct"] == 2
    groups = np.array([0, 0, 1, 1])
    uc = user_centric(game, split, groups)
    assert uc["rating[0]"] == pytest.approx(1.0) and uc["rating_gap"] == pytest.approx(0.0)
    pc = producer_centric(game, split, groups)
    # producer 0 serves only group 0, producer 1 only group 1: each ratio is (1 + 0)/2 / 0.5
    assert pc["exposure_ratio[0]"] == pytest.approx(1.0)
    assert pc["targeting[0]"] == pytest.approx(0.5)
    targeted = np.array([[1.0, 0.1], [1.0, -0.1]])  # both producers aim at group 0
    uc = user_centric(game, targeted, groups)
    assert uc["rating[0]"] > uc["rating[1]"] and uc["rating_gap"] > 0.5
    assert producer_centric(game, targeted, groups)["targeting[0]"] == 1.0
    items = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0]])
    nb = creator_neighbourhood(targeted, items, np.array([0, 0, 1, -1]), k=2)
    assert nb["neighbour_ratio[0]"] == pytest.approx(2.0)
    assert nb["neighbour_ratio[1]"] == 0.0
    with pytest.raises(ValueError, match=r"user_groups must have shape \(4,\)"):
        user_centric(game, split, np.array([0, 1]))
    with pytest.raises(ValueError, match="no known"):
        user_centric(game, split, -np.ones(4, int))


@pytest.mark.slow
def test_sweep_on_core_synthetic_data_shows_tau_dependence():
    """PMF demand: content spreads out as tau falls (Hron et al. 2023, Fig. 3 trend);
    NMF demand at large tau collapses onto one direction."""
    data = load_ratings("synthetic", seed=0, size=(120, 80))
    cfg = SweepConfig(
        models=("nmf", "pmf"),
        dims=(3,),
        taus=(1.0, 0.1),
        ns=(6,),
        n_restarts=3,
        max_steps=600,
        regs=(0.1,),
        embed_steps=200,
        eps_starts=2,
        eps_steps=50,
    )
    rows, fitted = run_sweep(data, cfg)
    assert len(rows) == 4 and set(fitted) == {("nmf", 3), ("pmf", 3)}
    by = {(r["model"], r["tau"]): r for r in rows}
    assert by[("nmf", 1.0)]["n_distinct"] == 1 and by[("nmf", 1.0)]["n_local_nash"] == 3
    assert by[("pmf", 0.1)]["mean_pairwise_cos"] < by[("pmf", 1.0)]["mean_pairwise_cos"]
    for r in rows:
        assert {"rating_gap", "exposure_ratio[1]", "nearest_item_cos", "epsilon"} <= set(r)
    import matplotlib.pyplot as plt

    fig = plot_tau_sweep(rows)
    assert len(fig.axes) == 4
    plt.close(fig)
