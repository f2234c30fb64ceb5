import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes.diagnostics import (
    ess_bulk,
    ess_tail,
    function_space_ess,
    random_projections,
    rhat,
)


def _ar1(rho, chains, n, seed):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(chains, n))
    x = np.zeros((chains, n))
    x[:, 0] = e[:, 0]
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * e[:, t]
    return x


def test_agrees_with_blackjax_peer():
    """Same estimators (Vehtari et al. 2021) as blackjax.diagnostics, to float32 precision."""
    import blackjax.diagnostics as bd

    x = _ar1(0.6, 4, 800, 0)
    x[1] += 0.3  # a slightly shifted chain
    for ours, theirs in ((ess_bulk, bd.ess_bulk), (ess_tail, bd.ess_tail), (rhat, bd.rhat)):
        np.testing.assert_allclose(ours(x), float(theirs(jnp.asarray(x))), rtol=1e-4)


def test_ar1_ess_matches_theory():
    """AR(1): integrated autocorrelation time (1 + rho) / (1 - rho)."""
    rho, chains, n = 0.5, 4, 20000
    x = _ar1(rho, chains, n, 1)
    want = chains * n * (1 - rho) / (1 + rho)
    # relative sd of the ESS estimate is ~ sqrt(2 * (window ~ 10 tau) / (C n)) < 5%
    assert abs(ess_bulk(x) / want - 1) < 0.1
    assert abs(rhat(x) - 1) < 0.01


def test_rhat_flags_disagreeing_chains_and_vector_form():
    x = _ar1(0.0, 4, 500, 2)
    x[0] += 2.0
    assert rhat(x) > 1.1
    three = np.stack([x, 2 * x, x + 1], axis=-1)
    assert ess_bulk(three).shape == (3,)
    fs = function_space_ess(three)
    assert fs["max_rhat"] > 1.1 and fs["min_bulk"] <= fs["median_bulk"]


def test_random_projections_fixed_and_unit():
    a, b = random_projections(3, 10, 4), random_projections(3, 10, 4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), 1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        ess_bulk(np.zeros(10))
    with pytest.raises(ValueError, match="non-finite"):
        rhat(np.full((2, 10), np.nan))
    with pytest.raises(ValueError, match="at least 4 draws"):
        ess_tail(np.zeros((2, 3)))
