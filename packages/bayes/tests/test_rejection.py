import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import multivariate_normal
from widelab_bayes.model import BNN
from widelab_bayes.rejection import (
    likelihood_bound,
    marginal_likelihood_bound,
    marginalised_rejection_sample,
    rejection_sample,
)
from widelab_core import layers as L
from widelab_core.testing import float64, standard_error

X = np.array([[0.0, 1.0], [1.0, 0.5], [-1.0, 0.3], [0.5, -0.5]])
Y = np.array([0.5, -0.3, 0.8, 0.1])


def _linear():
    model = BNN(L.Dense(1, W_std=1.0, b_std=1.0), X, Y, noise_std=1.0)
    Phi = np.concatenate([X / np.sqrt(2), np.ones((4, 1))], 1)
    evidence = multivariate_normal(np.zeros(4), Phi @ Phi.T + np.eye(4)).pdf(Y)
    cov = np.linalg.inv(Phi.T @ Phi + np.eye(3))
    return model, evidence, cov @ Phi.T @ Y, cov


def test_bayesian_linear_model_rejection_sampler():
    """Acceptance rate Z / M and posterior moments agree with closed forms."""
    with float64():
        model, evidence, mean, cov = _linear()
        res = rejection_sample(jax.random.key(0), model, 20000, batch_size=10000)
        rate = evidence / np.exp(likelihood_bound(model))
        assert abs(res.acceptance_rate - rate) < 4 * res.acceptance_rate_se
        w = np.concatenate([res.samples["readout"]["W"][:, :, 0], res.samples["readout"]["b"]], 1)
        assert w.shape == (res.num_accepted, 3)
        assert np.all(np.abs(w.mean(0) - mean) < 4 * standard_error(w))
        sd2 = np.diag(cov)
        # Var of a sample variance of Gaussians: 2 sd^4 / (n - 1)
        assert np.all(np.abs(w.var(0, ddof=1) - sd2) < 4 * sd2 * np.sqrt(2 / (len(w) - 1)))


def test_marginalised_variant_has_higher_acceptance_and_exact_moments():
    with float64():
        model, evidence, mean, cov = _linear()
        res = marginalised_rejection_sample(jax.random.key(1), model, 3000, batch_size=3000)
        rate = evidence / np.exp(marginal_likelihood_bound(model))
        assert rate > evidence / np.exp(likelihood_bound(model))  # tighter bound
        assert abs(res.acceptance_rate - rate) < 4 * res.acceptance_rate_se
        w = np.concatenate([res.samples["readout"]["W"][:, :, 0], res.samples["readout"]["b"]], 1)
        assert np.all(np.abs(w.mean(0) - mean) < 4 * standard_error(w))


def test_marginalised_on_hidden_layer_net_accepts_and_returns_params():
    x = jnp.linspace(-1, 1, 3)[:, None]
    net = L.serial(L.Dense(16, W_std=1.5, b_std=0.1), L.Relu(), L.Dense(1, W_std=1.5, b_std=0.1))
    model = BNN(net, x, 0.5 * x, noise_std=0.3)
    res = marginalised_rejection_sample(jax.random.key(2), model, 2000, batch_size=1000)
    plain = rejection_sample(jax.random.key(3), model, 2000, batch_size=1000)
    assert res.num_accepted > 0 and res.acceptance_rate > plain.acceptance_rate
    assert res.samples["hidden"][0]["W"].shape == (res.num_accepted, 1, 16)
