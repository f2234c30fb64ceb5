"""widelab_bayes meets widelab_kernels: finite BNNs approach their NNGP as width grows.

Matthews et al. 2018 (MMD^2 of prior function samples against the NNGP falls with
width) and Hron et al. 2020 (exact posteriors approach the NNGP posterior).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import widelab_kernels as kernels
from widelab_bayes import (
    BNN,
    gp_samples,
    marginalised_rejection_sample,
    mmd2_jackknife_se,
    mmd2_unbiased,
    network_prior_samples,
    relu_nngp,
)
from widelab_core import layers as L
from widelab_core.testing import float64, standard_error

pytestmark = pytest.mark.integration

W, B = 1.5, 0.1


def _mlp(width, depth):
    layers = []
    for _ in range(depth):
        layers += [L.Dense(width, W_std=W, b_std=B), L.Relu()]
    return L.serial(*layers, L.Dense(1, W_std=W, b_std=B))


def _nngp(net, x):
    k = kernels.kernel_fn(net)(x, None, get="nngp")
    return jnp.asarray(getattr(k, "nngp", k))


def test_kernels_nngp_equals_bayes_relu_recursion():
    with float64():
        x = jax.random.normal(jax.random.key(0), (5, 3))
        for depth in (1, 2, 3):
            np.testing.assert_allclose(
                _nngp(_mlp(8, depth), x), relu_nngp(x, depth, W, B), rtol=1e-8, atol=1e-10
            )


def test_prior_mmd_to_nngp_falls_with_width():
    x = jax.random.normal(jax.random.key(1), (4, 2))
    depth, reps, m = 2, 8, 150
    cov = _nngp(_mlp(8, depth), x)
    ls = float(jnp.sqrt(jnp.trace(cov)))  # a fixed lengthscale on the function scale
    est = {}
    for width in (2, 256):
        keys = jax.random.split(jax.random.key(width), reps)
        vals = []
        for k in keys:
            k1, k2 = jax.random.split(k)
            f = network_prior_samples(k1, _mlp(width, depth), x, m)
            vals.append(float(mmd2_unbiased(f, gp_samples(k2, cov, m), ls)))
        est[width] = np.asarray(vals)
    gap = est[2].mean() - est[256].mean()
    se = np.hypot(standard_error(est[2]), standard_error(est[256]))
    assert gap > 3 * se, (est, se)
    # at width 256 the finite-width MMD^2 (O(1/width^2)) is below what 8 x 150 draws resolve
    assert abs(est[256].mean()) < 4 * standard_error(est[256])


@pytest.mark.slow
def test_exact_posterior_discrepancy_to_nngp_posterior_falls_with_width():
    """Rejection-sampled exact BNN posteriors vs the NNGP posterior at test inputs."""
    with float64():
        x = jnp.array([[-1.0], [0.0], [1.0]])
        y = jnp.array([0.8, -0.2, 0.5])
        xt = jnp.array([[-0.5], [0.5], [1.5]])
        s2 = 0.25
        net = _mlp(8, 1)
        xa = jnp.concatenate([x, xt])
        K = _nngp(net, xa)
        kxx, kxt, ktt = K[:3, :3], K[:3, 3:], K[3:, 3:]
        sol = jnp.linalg.solve(kxx + s2 * jnp.eye(3), jnp.concatenate([y[:, None], kxt], 1))
        gp_mean, gp_cov = kxt.T @ sol[:, 0], ktt - kxt.T @ sol[:, 1:]
        disc, se = {}, {}
        for width in (2, 256):
            model = BNN(_mlp(width, 1), x, y, noise_std=s2**0.5)
            res = marginalised_rejection_sample(jax.random.key(width), model, 4000, batch_size=2000)
            f = jax.vmap(lambda p: model.apply(p, xt)[:, 0])(res.samples)
            g = gp_samples(jax.random.key(7), gp_cov, f.shape[0], mean=gp_mean)
            disc[width] = float(mmd2_unbiased(f, g, 1.0))
            se[width] = mmd2_jackknife_se(f, g, 1.0)
            assert res.num_accepted > 300  # enough accepted draws for the jackknife
        # the discrepancy falls with width by more than 3 standard errors of the difference
        assert disc[2] - disc[256] > 3 * np.hypot(se[2], se[256]), (disc, se)
        # and at width 256 is within 4 standard errors of zero (Hron et al. 2020, Fig. 1)
        assert abs(disc[256]) < 4 * se[256], (disc, se)
