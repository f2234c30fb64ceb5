"""Binomial intervals of a cell's hallucination rate: coverage and the 0 / 1 edges."""

import math

import numpy as np
import pytest
from scipy.stats import binom
from widelab_lm_hallucination import GridPoint, aggregate_grid, agresti_coull_se, wilson_interval

Z = 1.959963984540054  # standard normal 97.5% point

# (n queries, true rate): small n, rates near 0 and 1 where the Wald interval fails
POINTS = [(20, 0.05), (20, 0.5), (30, 0.02), (40, 0.1), (50, 0.9), (100, 0.01), (60, 0.97)]


def _score_test_coverage(n, p):
    """Exact coverage from the definition: the Wilson interval holds p exactly when the
    score test |k - n p| <= z sqrt(n p (1 - p)) accepts (independent of the code)."""
    k = np.arange(n + 1)
    accept = np.abs(k - n * p) <= Z * math.sqrt(n * p * (1 - p))
    return float(binom.pmf(k, n, p)[accept].sum())


def _wald(k, n):
    r = k / n
    h = Z * np.sqrt(r * (1 - r) / n)
    return r - h, r + h


@pytest.mark.parametrize("n,p", POINTS)
def test_wilson_coverage_of_simulated_binomials(n, p):
    m = 4000
    k = np.random.default_rng(n * 1000 + round(p * 100)).binomial(n, p, size=m)
    low, high = wilson_interval(k, n)
    covered = float(np.mean((low <= p) & (p <= high)))
    exact = _score_test_coverage(n, p)
    mc_se = math.sqrt(exact * (1 - exact) / m)  # Monte Carlo se of a coverage rate
    assert abs(covered - exact) <= 3 * mc_se, (covered, exact)
    # Wilson stays near nominal at every point (Brown, Cai & DasGupta 2001, Fig. 5) ...
    assert covered >= 0.92 - 3 * mc_se
    # ... where the Wald interval (0 width at k = 0 or n) under-covers at the edges
    if min(p, 1 - p) * n < 3:
        wl, wh = _wald(k, n)
        assert float(np.mean((wl <= p) & (p <= wh))) < 0.9


def test_edges_have_positive_width():
    n = 40
    low, high = wilson_interval(np.array([0, n]), n)
    assert low[0] == 0.0 and high[1] == 1.0
    assert high[0] == pytest.approx(Z**2 / (n + Z**2), rel=1e-12)
    assert low[1] == pytest.approx(n / (n + Z**2), rel=1e-12)
    se = agresti_coull_se(np.array([0, n]), n)
    p_t = Z**2 / 2 / (n + Z**2)
    assert se == pytest.approx(math.sqrt(p_t * (1 - p_t) / (n + Z**2)), rel=1e-12)
    # an interior count: the closed form
    lo, hi = wilson_interval(3, 10)
    c, h = (3 + Z**2 / 2) / (10 + Z**2), Z / (10 + Z**2) * math.sqrt(3 * 7 / 10 + Z**2 / 4)
    assert (float(lo), float(hi)) == pytest.approx((c - h, c + h), rel=1e-12)
    with pytest.raises(ValueError, match=r"0 <= k <= n with n >= 1, got k=\[5.0\], n=\[4.0\]"):
        wilson_interval([5], [4])
    with pytest.raises(ValueError, match="level must be in"):
        agresti_coull_se(1, 4, level=1.0)


def _gp(rate, seed=0, n=40):
    return GridPoint(16, 100, 4.0, 10, 1e6, rate, 0.0, 1.0, float("nan"), 1.0, seed, n, "")


def test_aggregate_grid_at_rates_zero_and_one():
    for rate in (0.0, 1.0):
        one = aggregate_grid([_gp(rate)])[0]
        assert one["se"] > 0.02 and one["high"] - one["low"] > 0.08
        assert one["low"] <= rate <= one["high"]
        # three seeds that agree: no spread, the pooled 120 outputs bound the rate
        three = aggregate_grid([_gp(rate, seed=s) for s in range(3)])[0]
        assert three["se_kind"] == "binomial"
        assert three["se"] == pytest.approx(float(agresti_coull_se(round(rate * 120), 120)))
        assert 0 < three["high"] - three["low"] < one["high"] - one["low"]
