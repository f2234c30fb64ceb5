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
