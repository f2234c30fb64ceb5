import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes import BNN, ModelError, Repriorised, rejection_sample
from widelab_bayes.likelihoods import Categorical, Gaussian
from widelab_bayes.studies import sampling_coordinates
from widelab_core import layers as L
from widelab_core.testing import float64


def _net(k, width=6):
    return L.serial(L.Dense(width, W_std=1.3, b_std=0.2), L.Relu(), L.Dense(k, b_std=0.3))


def test_categorical_log_likelihood_by_hand():
    with float64():
        x = jax.random.normal(jax.random.key(0), (5, 2))
        labels = np.array([0, 2, 1, 2, 0])
        m = BNN(_net(3), x, labels, likelihood=Categorical())
        p = m.init(jax.random.key(1))
        f = np.asarray(m.apply(p))
        want = sum(f[i, c] - math.log(np.exp(f[i]).sum()) for i, c in enumerate(labels))
        np.testing.assert_allclose(float(m.log_likelihood(p)), want, rtol=1e-12)
        # the same targets given one-hot
        m2 = BNN(_net(3), x, np.eye(3)[labels], likelihood=Categorical())
        np.testing.assert_allclose(float(m2.log_likelihood(p)), want, rtol=1e-12)


@pytest.mark.parametrize(
    "y, match",
    [(np.array([0, 3, 1]), r"integers in \[0, 3\).*3"), (np.array([0.5, 1, 1]), "integers")],
)
def test_bad_class_labels(y, match):
    x = jnp.ones((3, 2))
    with pytest.raises(ModelError, match=match):
        BNN(_net(3), x, y, likelihood=Categorical())


def test_repriorised_and_collapsed_refuse_a_categorical_likelihood():
    x = jnp.ones((3, 2))
    m = BNN(_net(3), x, np.array([0, 1, 2]), likelihood=Categorical())
    with pytest.raises(ModelError, match="Gaussian likelihood: only then is the readout"):
        Repriorised(m)
    with pytest.raises(ModelError, match="Gaussian likelihood"):
        sampling_coordinates("collapsed-ghmc", m)
    sampling_coordinates("plain-nuts", m)  # the plain coordinates are fine


def test_need_exactly_one_of_noise_std_and_likelihood():
    x = jnp.ones((3, 2))
    with pytest.raises(ModelError, match="exactly one"):
        BNN(_net(1), x, jnp.ones(3))
    with pytest.raises(ModelError, match="exactly one"):
        BNN(_net(1), x, jnp.ones(3), 0.1, likelihood=Gaussian(0.1))


def test_multi_output_repriorised_densities_agree():
    """Ten one-hot outputs: collapsed == direct change-of-variables density, primal == dual,
    and the marginal likelihood is the product of per-column GP marginals."""
    with float64():
        n, k = 7, 10
        x = jax.random.normal(jax.random.key(0), (n, 3))
        y = np.eye(k)[np.arange(n) % k] - 0.1
        for width in (4, 12):  # p < N (primal) and p > N (dual)
            m = BNN(_net(k, width), x, y, noise_std=0.5)
            rep = Repriorised(m)
            other = Repriorised(m, form="dual" if rep.form == "primal" else "primal")
            p = rep.init(jax.random.key(width))

            def densities(p, rep=rep, other=other):  # one compiled program per width
                h = p["hidden"]
                return (
                    rep.log_density(p),
                    rep.log_density_direct(p),
                    other.log_density(p),
                    rep.design(h),
                    rep.log_marginal_likelihood(h),
                )

            ld, ld_direct, ld_other, Phi, lml = jax.jit(densities)(p)
            np.testing.assert_allclose(ld, ld_direct, rtol=1e-10)
            np.testing.assert_allclose(ld, ld_other, rtol=1e-10)
            Phi = np.asarray(Phi)
            cov = Phi @ Phi.T + 0.25 * np.eye(n)
            sign, logdet = np.linalg.slogdet(cov)
            want = sum(
                -0.5 * y[:, c] @ np.linalg.solve(cov, y[:, c])
                - 0.5 * logdet
                - 0.5 * n * math.log(2 * math.pi)
                for c in range(k)
            )
            np.testing.assert_allclose(lml, want, rtol=1e-10)


def test_categorical_rejection_sampling_accepts_at_the_prior_mean_likelihood():
    """The bound of the softmax likelihood is 1, so the acceptance rate estimates
    E_prior[p(y | f)]; compare with a Monte Carlo mean from independent prior draws."""
    x = jax.random.normal(jax.random.key(3), (2, 2))
    m = BNN(_net(2, 3), x, np.array([0, 1]), likelihood=Categorical())
    r = rejection_sample(jax.random.key(0), m, 4000)
    draws = jax.vmap(m.init)(jax.random.split(jax.random.key(1), 4000))
    lik = np.exp(np.asarray(jax.vmap(m.log_likelihood)(draws)))
    se = math.hypot(r.acceptance_rate_se, lik.std() / math.sqrt(lik.size))
    assert abs(r.acceptance_rate - lik.mean()) < 4 * se, (r.acceptance_rate, lik.mean(), se)
