import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes.mmd import (
    gp_samples,
    mmd2_gaussians,
    mmd2_to_gp,
    mmd2_unbiased,
    network_prior_samples,
    relu_nngp,
)
from widelab_core import layers as L
from widelab_core.testing import standard_error


def test_unbiased_estimator_matches_closed_form_between_gaussians():
    """The mean of many independent MMD^2 estimates equals the population value."""
    d, m, reps, ls = 3, 60, 200, 1.5
    m1, c1 = jnp.zeros(d), jnp.eye(d)
    m2 = jnp.array([0.4, 0.0, -0.2])
    c2 = jnp.array([[1.5, 0.3, 0.0], [0.3, 1.0, 0.0], [0.0, 0.0, 0.6]])
    exact = float(mmd2_gaussians(m1, c1, m2, c2, ls))
    k1, k2 = jax.random.split(jax.random.key(0))
    xs = gp_samples(k1, c1, reps * m).reshape(reps, m, d)
    ys = gp_samples(k2, c2, reps * m, mean=m2).reshape(reps, m, d)
    est = np.asarray(jax.vmap(lambda a, b: mmd2_unbiased(a, b, ls))(xs, ys))
    assert abs(est.mean() - exact) < 4 * standard_error(est)
    assert exact > 4 * standard_error(est)  # the test can tell the two apart
    # equal distributions: population value exactly zero
    np.testing.assert_allclose(mmd2_gaussians(m1, c1, m1, c1, ls), 0.0, atol=1e-7)


def test_relu_nngp_matches_monte_carlo_of_wide_network():
    x = jax.random.normal(jax.random.key(1), (3, 2))
    net = L.serial(
        L.Dense(128, W_std=1.4, b_std=0.3),
        L.Relu(),
        L.Dense(128, W_std=1.4, b_std=0.3),
        L.Relu(),
        L.Dense(1, W_std=1.4, b_std=0.3),
    )
    f = np.asarray(network_prior_samples(jax.random.key(2), net, x, 1500))
    k = np.asarray(relu_nngp(x, 2, 1.4, 0.3))
    prods = f[:, :, None] * f[:, None, :]
    se = standard_error(prods)
    # finite width 128 adds an O(1/width) bias, small next to the Monte Carlo error here
    assert np.all(np.abs(prods.mean(0) - k) < 4 * se + 0.02 * np.abs(k))
    # the tolerance is tight enough to reject a kernel that is 20% off
    assert np.any(np.abs(prods.mean(0) - 1.2 * k) >= 4 * se + 0.02 * np.abs(k))


def test_mmd_to_gp_small_for_gp_draws_large_for_wrong_scale():
    cov = relu_nngp(jnp.linspace(-1, 1, 4)[:, None], 1, 1.5, 0.1)
    good = gp_samples(jax.random.key(3), cov, 300)
    bad = 2.0 * good
    g, ls = mmd2_to_gp(jax.random.key(4), good, cov)
    b, _ = mmd2_to_gp(jax.random.key(4), bad, cov, lengthscale=ls)
    assert b > 10 * abs(g)


def test_bad_input():
    with pytest.raises(ValueError, match="differ in dimension"):
        mmd2_unbiased(np.zeros((5, 2)), np.zeros((5, 3)), 1.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd2_unbiased(np.zeros((1, 2)), np.zeros((5, 2)), 1.0)
    with pytest.raises(ValueError, match="lengthscale"):
        mmd2_unbiased(np.zeros((3, 2)), np.zeros((3, 2)), -1.0)
    with pytest.raises(ValueError, match="gp_cov has shape"):
        mmd2_to_gp(jax.random.key(0), np.zeros((5, 3)), np.eye(4))
    with pytest.raises(ValueError, match="cov2 must have shape"):
        mmd2_gaussians(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3), 1.0)
