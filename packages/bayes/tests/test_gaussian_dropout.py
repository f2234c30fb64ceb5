import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special
from widelab_bayes.gaussian_dropout import (
    _G0,
    additive_spurious_minimum,
    expected_log_square,
    gaussian_dropout_kl,
    gaussian_dropout_kl_quadrature,
    gaussian_dropout_objective,
    log_uniform_posterior_mass,
    molchanov_kl,
    qkl_degenerate_gaussian,
    qkl_optimal_degenerate,
)

ALPHAS = [1e-3, 0.03, 0.2, 1.0, 4.0, 50.0]


def test_kl_matches_quadrature_and_dawson_form():
    with jax.enable_x64(True):
        kl = np.asarray(gaussian_dropout_kl(jnp.log(jnp.asarray(ALPHAS))))
        for a, v in zip(ALPHAS, kl):
            assert v == pytest.approx(gaussian_dropout_kl_quadrature(a), rel=1e-9, abs=1e-12)
            # independent form: g(mu) = g(0) + 2 sqrt(2) int_0^mu D(t / sqrt 2) dt
            mu = a**-0.5
            integral = integrate.quad(lambda t: special.dawsn(t / math.sqrt(2)), 0, mu)[0]
            assert v == pytest.approx(math.sqrt(2) * integral, rel=1e-9, abs=1e-12)


def test_kl_shape_limits_and_series_switch():
    with jax.enable_x64(True):
        la = jnp.linspace(-12, 12, 97)
        kl = np.asarray(gaussian_dropout_kl(la))
        assert np.all(np.diff(kl) < 0) and np.all(kl > 0)
        assert kl[-1] < 1e-5
        # small alpha: KL + 1/2 log alpha -> -g(0)/2
        small = kl[0] - 6.0
        assert small == pytest.approx(-0.5 * _G0, abs=1e-5)
        # continuity at the asymptotic (mu^2 = 100) and Taylor hand-overs
        pts = [10.0 - 1e-12, 10.0 + 1e-12, math.sqrt(2e-4) - 1e-12, math.sqrt(2e-4) + 1e-12]
        g = np.asarray(jax.jit(expected_log_square)(jnp.asarray(pts)))
        assert abs(g[1] - g[0]) < 1e-9 and abs(g[3] - g[2]) < 1e-9
        # second derivative at 0 is 2 (g ~ g0 + mu^2)
        assert float(jax.jit(jax.grad(jax.grad(expected_log_square)))(0.0)) == pytest.approx(2.0)
        # gradient against central differences
        at = jnp.asarray([0.3, 5.0])
        grad = jax.jit(jax.vmap(jax.grad(gaussian_dropout_kl)))(at)
        fd = np.asarray(gaussian_dropout_kl(at + 1e-6)) - np.asarray(gaussian_dropout_kl(at - 1e-6))
        np.testing.assert_allclose(np.asarray(grad), fd / 2e-6, rtol=1e-6)


def test_sigmoid_approximation_is_close_but_not_exact():
    with jax.enable_x64(True):
        la = jnp.linspace(-8, 8, 161)
        diff = np.abs(np.asarray(molchanov_kl(la) - gaussian_dropout_kl(la)))
        assert diff.max() < 0.02
        assert diff.max() > 1e-3


def test_improper_posterior_normaliser_diverges():
    res = log_uniform_posterior_mass(lambda w: math.exp(-0.5 * (w - 1.0) ** 2))
    assert np.all(np.diff(res.masses) > 0)
    assert res.slope == pytest.approx(res.predicted_slope, rel=1e-3)
    assert res.predicted_slope == pytest.approx(2 * math.exp(-0.5))
    with pytest.raises(ValueError, match="decreasing"):
        log_uniform_posterior_mass(lambda w: 1.0, deltas=(1e-3, 1e-2))
    with pytest.raises(ValueError, match="L\\(0\\) > 0"):
        log_uniform_posterior_mass(lambda w: w**2)


def test_additive_reparameterisation_spurious_minimum():
    res = additive_spurious_minimum(steps=1500, lr=0.02)
    th_m, obj_m = res.multiplicative
    th_a, obj_a = res.additive
    assert abs(th_a[0] * th_a[1]) < 1e-6  # collapsed to theta = 0
    assert th_m[0] * th_m[1] > 0.3  # fits the slope
    assert obj_a > obj_m + 0.05  # a worse, spurious point
    assert np.all(res.additive_hessian_eigs > 0)  # ... and a genuine local minimum
    # in the multiplicative parameterisation theta = 0 is a saddle
    x = jnp.linspace(-1.0, 1.0, 20)
    p0 = jnp.asarray([0.0, 0.0, th_m[2], th_m[3]])
    h = jax.jit(
        jax.hessian(
            lambda t: gaussian_dropout_objective(jnp.concatenate([t, p0[2:]]), x, x, additive=False)
        )
    )(p0[:2])
    assert np.linalg.eigvalsh(np.asarray(h)).min() < 0


def test_qkl_closed_form_monte_carlo_and_pca_optimum():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        d, r = 5, 2
        a = rng.standard_normal((d, d))
        cov = a @ a.T / d + 0.2 * np.eye(d)
        mp = rng.standard_normal(d)
        u, _ = np.linalg.qr(rng.standard_normal((d, r)))
        lam = np.array([0.7, 1.3])
        m = rng.standard_normal(d)
        val = float(
            qkl_degenerate_gaussian(
                jnp.asarray(m), jnp.asarray(u), jnp.asarray(lam), jnp.asarray(mp), jnp.asarray(cov)
            )
        )
        # Monte Carlo: E_q[log q_r(c) - log p(m + U c)], density of q on its support
        c = rng.standard_normal((200000, r)) * np.sqrt(lam)[None, :]
        z = m[None, :] + c @ u.T
        logq = -0.5 * np.sum(c**2 / lam[None, :] + np.log(2 * np.pi * lam)[None, :], axis=1)
        from scipy import stats

        terms = logq - stats.multivariate_normal(mp, cov).logpdf(z)
        se = terms.std() / np.sqrt(len(terms))
        assert abs(terms.mean() - val) < 4 * se

        opt = qkl_optimal_degenerate(jnp.asarray(mp), jnp.asarray(cov), r)
        ev = np.sort(np.linalg.eigvalsh(cov))[::-1]
        assert float(opt.value) == pytest.approx(0.5 * np.sum(np.log(2 * np.pi * ev[r:])))
        at_opt = float(
            qkl_degenerate_gaussian(
                opt.mean, opt.basis, opt.variances, jnp.asarray(mp), jnp.asarray(cov)
            )
        )
        assert at_opt == pytest.approx(float(opt.value), rel=1e-10)
        for _ in range(20):  # no random subspace (with its optimal variances) does better
            v, _ = np.linalg.qr(rng.standard_normal((d, r)))
            lam_v = 1.0 / np.diag(v.T @ np.linalg.solve(cov, v))
            other = float(
                qkl_degenerate_gaussian(
                    jnp.asarray(mp),
                    jnp.asarray(v),
                    jnp.asarray(lam_v),
                    jnp.asarray(mp),
                    jnp.asarray(cov),
                )
            )
            assert other > float(opt.value)


def test_errors():
    with pytest.raises(ValueError, match="finite"):
        gaussian_dropout_kl(jnp.asarray([0.0, jnp.inf]))
    with pytest.raises(ValueError, match="alpha must be positive"):
        gaussian_dropout_kl_quadrature(-1.0)
    eye = jnp.eye(3)
    with pytest.raises(ValueError, match="orthonormal"):
        qkl_degenerate_gaussian(jnp.zeros(3), 2 * eye[:, :2], jnp.ones(2), jnp.zeros(3), eye)
    with pytest.raises(ValueError, match="positive"):
        qkl_degenerate_gaussian(jnp.zeros(3), eye[:, :2], -jnp.ones(2), jnp.zeros(3), eye)
    with pytest.raises(ValueError, match="shapes"):
        qkl_degenerate_gaussian(jnp.zeros(2), eye[:, :2], jnp.ones(2), jnp.zeros(3), eye)
    with pytest.raises(ValueError, match="rank"):
        qkl_optimal_degenerate(jnp.zeros(3), eye, 4)
