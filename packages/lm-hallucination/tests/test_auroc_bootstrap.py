"""Stratified bootstrap interval of the AUROC: standard error, coverage, edge cases."""

import math

import numpy as np
import pytest
from scipy.stats import norm
from widelab_lm_hallucination import auroc, auroc_bootstrap_interval, auroc_standard_error


def _gaussian(rng, n_pos, n_neg, d):
    """Positives N(d, 1), negatives N(0, 1): true AUROC Phi(d / sqrt 2)."""
    y = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    return y, np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]


def test_bootstrap_se_agrees_with_hanley_mcneil():
    n, n_boot = 200, 2000
    y, s = _gaussian(np.random.default_rng(0), n, n, 1.0)
    low, high, se = auroc_bootstrap_interval(y, s, n_boot=n_boot, seed=0)
    a = auroc(y, s)
    # the bootstrap sd of n_boot replicates has relative Monte Carlo error
    # ~ 1 / sqrt(2 n_boot) = 1.6%; 0.06 is ~3.5 of those plus ~1% for the Hanley-McNeil
    # approximation (exponential score model) at A ~ 0.76
    assert se == pytest.approx(auroc_standard_error(a, n, n), rel=0.06)
    assert low < a < high
    # a normal-theory interval of the same width, so low / high are the 2.5% / 97.5% points
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_percentile_interval_coverage():
    # 200 data sets of two unit-variance Gaussians d = 1 apart (true A = Phi(1/sqrt 2));
    # the coverage rate of the 90% interval has binomial se sqrt(0.9 * 0.1 / 200) = 0.021
    n_sets, level = 200, 0.90
    true_a = norm.cdf(1 / math.sqrt(2))
    rng = np.random.default_rng(1)
    covered = 0
    for k in range(n_sets):
        y, s = _gaussian(rng, 100, 100, 1.0)
        low, high, _ = auroc_bootstrap_interval(y, s, level=level, n_boot=500, seed=k)
        covered += low <= true_a <= high
    binomial_se = math.sqrt(level * (1 - level) / n_sets)
    assert abs(covered / n_sets - level) < 3 * binomial_se, covered


def test_ties_and_separation_are_exact():
    y = np.r_[np.ones(5, bool), np.zeros(7, bool)]
    # all scores tied: every replicate counts each pair as half a win
    assert tuple(auroc_bootstrap_interval(y, np.zeros(12), n_boot=50)) == (0.5, 0.5, 0.0)
    # perfect separation survives every resampling
    assert tuple(auroc_bootstrap_interval(y, y.astype(float), n_boot=50)) == (1.0, 1.0, 0.0)
    # one draw: a single replicate, no standard error
    low, high, se = auroc_bootstrap_interval(y, np.arange(12.0), n_boot=1)
    assert low == high and math.isnan(se)


def test_bad_arguments():
    y, s = np.r_[True, False, True], np.r_[0.3, 0.1, 0.2]
    with pytest.raises(ValueError, match="both positive and negative"):
        auroc_bootstrap_interval(np.ones(3, bool), s)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\), got 1.0"):
        auroc_bootstrap_interval(y, s, level=1.0)
    with pytest.raises(ValueError, match="level must be in"):
        auroc_bootstrap_interval(y, s, level=0.0)
    with pytest.raises(ValueError, match="n_boot must be an integer >= 1, got 0"):
        auroc_bootstrap_interval(y, s, n_boot=0)
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        auroc_bootstrap_interval(y, s[:2])


def _clustered(rng, n_groups=80, rows=6):
    """Rows in queries: a query mostly hallucinates (rate 0.85) or mostly not (0.15) and
    shifts all its scores by a shared u ~ N(0, 1); within it rows are label + N(0, 0.5^2)."""
    rate = rng.choice([0.15, 0.85], size=n_groups)
    g = np.repeat(np.arange(n_groups), rows)
    y = rng.random(g.size) < rate[g]
    return y, y + rng.normal(0, 1, n_groups)[g] + rng.normal(0, 0.5, g.size), g


def test_cluster_bootstrap_covers_where_the_row_bootstrap_does_not():
    # the target: the mean and sd of the AUROC over 2000 independent data sets of this
    # design (Monte Carlo se of the mean 0.04 / sqrt(2000) ~ 0.001, negligible here)
    rng = np.random.default_rng(2)
    sims = [_clustered(rng) for _ in range(2000)]
    aucs = np.array([auroc(y, s) for y, s, _ in sims if 0 < y.sum() < y.size])
    true_a, true_sd = aucs.mean(), aucs.std(ddof=1)
    n_sets, level = 200, 0.90
    rng = np.random.default_rng(3)
    hits, ses = {"rows": 0, "queries": 0}, {"rows": [], "queries": []}
    for k in range(n_sets):
        y, s, g = _clustered(rng)
        for kind, groups in (("rows", None), ("queries", g)):
            low, high, se = auroc_bootstrap_interval(
                y, s, groups=groups, level=level, n_boot=400, seed=k
            )
            hits[kind] += low <= true_a <= high
            ses[kind].append(se)
    # coverage rates have binomial se sqrt(0.9 * 0.1 / 200) = 0.021
    binomial_se = math.sqrt(level * (1 - level) / n_sets)
    assert abs(hits["queries"] / n_sets - level) < 3 * binomial_se, hits
    assert hits["rows"] / n_sets < level - 3 * binomial_se, hits
    # the query bootstrap's se estimates the AUROC's sampling sd (relative Monte Carlo
    # error ~ 1 / sqrt(2 * 2000) of true_sd plus ~1% from averaging 200 se's; 0.1 leaves
    # room for the bootstrap's (G - 1) / G shrinkage); resampling rows halves it
    assert np.mean(ses["queries"]) == pytest.approx(true_sd, rel=0.1)
    assert np.mean(ses["rows"]) < 0.75 * true_sd


def test_cluster_bootstrap_edge_cases():
    y = np.r_[True, True, False, False]
    s = np.r_[0.9, 0.8, 0.2, 0.1]
    # every replicate that holds both classes is perfectly separated
    low, high, se = auroc_bootstrap_interval(y, s, groups=[0, 1, 2, 3], n_boot=50)
    assert (low, high, se) == (1.0, 1.0, 0.0)
    # one group holding everything: every replicate is the data set itself
    assert tuple(auroc_bootstrap_interval(y, s, groups=np.zeros(4), n_boot=20)) == (1, 1, 0)
    with pytest.raises(ValueError, match="4 labels but 3 groups"):
        auroc_bootstrap_interval(y, s, groups=[0, 1, 2])
