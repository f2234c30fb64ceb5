import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.stats import multivariate_normal
from widelab_bayes.model import BNN, ModelError
from widelab_bayes.repriorise import Repriorised
from widelab_core import layers as L
from widelab_core.testing import float64


def _fc(width, k=2):
    return L.serial(
        L.Dense(width, W_std=1.3, b_std=0.2), L.Relu(), L.Dense(k, W_std=1.5, b_std=0.3)
    )


def _resnet(width, k=2):
    block = L.serial(L.Relu(), L.Dense(width, W_std=1.2, b_std=0.1))
    return L.serial(
        L.Dense(width, W_std=1.0, b_std=0.1),
        L.FanOut(2),
        L.parallel(block, L.Identity()),
        L.FanInSum(),
        L.Relu(),
        L.Dense(k, W_std=1.4),  # no bias: phi has `width` rows
    )


def _data(n=6, k=2):
    x = jax.random.normal(jax.random.key(1), (n, 3))
    y = jnp.stack([jnp.sin(x[:, 0]), jnp.cos(x[:, 1])], 1)[:, :k]
    return x, y


CASES = [(_fc, 3, "primal"), (_fc, 20, "dual"), (_resnet, 20, "primal"), (_resnet, 3, "dual")]


@pytest.mark.parametrize("make, width, form", CASES)
def test_direct_density_equals_collapsed_and_logdet_matches_jacobian(make, width, form):
    """prior + likelihood + log|det| equals p(theta) N(phi) p(y|theta); log|det| = autodiff."""
    with float64():
        x, y = _data()
        rep = Repriorised(BNN(make(width), x, y, noise_std=0.3), form=form)
        p = rep.init(jax.random.key(2))

        @jax.jit
        def everything(p):
            jac = jax.jacfwd(lambda ph: rep.readout_rows(p["hidden"], ph).ravel())(p["phi"])
            raw = rep.to_raw(p)
            return (
                rep.log_density_direct(p),
                rep.log_density(p),
                jnp.linalg.slogdet(jac.reshape(p["phi"].size, p["phi"].size))[1],
                rep.log_det(p["hidden"]),
                rep.from_raw(raw)["phi"],
                rep.predict(p) - rep.model.apply(raw),
                rep.log_hidden_density(p["hidden"]),
            )

        direct, collapsed, jac_logdet, logdet, phi_back, pred_diff, hidden = everything(p)
        np.testing.assert_allclose(direct, collapsed, rtol=1e-11)
        # the theta factor: what is left after the exact N(0, I) density of phi
        log_phi = np.sum(stats.norm.logpdf(np.asarray(p["phi"])))
        np.testing.assert_allclose(direct - log_phi, hidden, rtol=1e-11)
        np.testing.assert_allclose(jac_logdet, logdet, rtol=1e-10)
        np.testing.assert_allclose(phi_back, p["phi"], atol=1e-10)
        np.testing.assert_allclose(pred_diff, 0.0, atol=1e-12)


def test_primal_and_dual_agree_where_they_must():
    with float64():
        x, y = _data()
        model = BNN(_fc(9), x, y, noise_std=0.3)
        prim, dual = Repriorised(model, "primal"), Repriorised(model, "dual")
        assert (
            Repriorised(model).form == "dual"
            and Repriorised(BNN(_fc(4), x, y, 0.3)).form == "primal"
        )
        h = prim.init(jax.random.key(3))["hidden"]
        np.testing.assert_allclose(prim.log_det(h), dual.log_det(h), rtol=1e-11)
        np.testing.assert_allclose(
            prim.log_marginal_likelihood(h), dual.log_marginal_likelihood(h), rtol=1e-11
        )
        np.testing.assert_allclose(prim.conditional_mean(h), dual.conditional_mean(h), atol=1e-11)


@pytest.mark.parametrize("form", ["primal", "dual"])
def test_bayesian_linear_model_exact_conditional_posterior(form):
    """With no hidden layer the map w(phi) must be the closed-form posterior exactly."""
    with float64():
        n, d = 4, 3
        x = jax.random.normal(jax.random.key(4), (n, d))
        y = jnp.array([0.5, -0.3, 0.8, 0.1])
        s = 0.7
        rep = Repriorised(BNN(L.Dense(1, W_std=1.2, b_std=0.5), x, y, noise_std=s), form)
        Phi = np.concatenate([1.2 * np.asarray(x) / np.sqrt(d), 0.5 * np.ones((n, 1))], 1)
        cov = np.linalg.inv(np.eye(d + 1) + Phi.T @ Phi / s**2)
        mean = cov @ Phi.T @ np.asarray(y) / s**2
        A = jax.jacfwd(lambda ph: rep.readout_rows((), ph)[:, 0])(jnp.zeros((d + 1, 1)))[:, :, 0]
        np.testing.assert_allclose(
            rep.readout_rows((), jnp.zeros((d + 1, 1)))[:, 0], mean, atol=1e-12
        )
        np.testing.assert_allclose(A @ A.T, cov, atol=1e-12)
        # the repriorised density is N(phi; 0, I) times the exact evidence
        evidence = multivariate_normal(np.zeros(n), Phi @ Phi.T + s**2 * np.eye(n)).logpdf(y)
        for seed in (5, 6):
            phi = jax.random.normal(jax.random.key(seed), (d + 1, 1), jnp.float64)
            want = multivariate_normal(np.zeros(d + 1)).logpdf(np.asarray(phi[:, 0])) + evidence
            np.testing.assert_allclose(
                rep.log_density_direct({"hidden": (), "phi": phi}), want, rtol=1e-11
            )


def test_float32_gradient_is_finite_and_bad_phi_shape():
    x, y = _data()
    rep = Repriorised(BNN(_fc(16), x, y, noise_std=0.2))
    p = rep.init(jax.random.key(7))
    g = jax.jit(jax.grad(rep.log_density))(p)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(g))
    np.testing.assert_allclose(g["phi"], -p["phi"], rtol=1e-6)
    with pytest.raises(ModelError, match=r"phi must have shape \(17, 2\)"):
        rep.log_density({"hidden": p["hidden"], "phi": p["phi"][:3]})
    with pytest.raises(ModelError, match="form must be"):
        Repriorised(rep.model, "nope")


@pytest.mark.parametrize("form", ["primal", "dual"])
def test_hand_written_gradient_matches_autodiff_reference(form):
    """The custom VJP of spd_logdet_quad gives the same gradient as plain autodiff."""
    with float64():
        x, y = _data()
        rep = Repriorised(BNN(_fc(5), x, y, noise_std=0.3), form)
        p = rep.init(jax.random.key(8))

        def reference(p):
            Phi = rep.design(p["hidden"])
            C = Phi @ Phi.T + 0.09 * jnp.eye(Phi.shape[0])
            quad = jnp.sum(y * jnp.linalg.solve(C, y))
            lml = -0.5 * quad - 0.5 * y.shape[1] * jnp.linalg.slogdet(C)[1]
            prior = -0.5 * sum(jnp.sum(v * v) for v in jax.tree.leaves(p))
            return lml + prior

        g, g_ref = jax.jit(lambda p: (jax.grad(rep.log_density)(p), jax.grad(reference)(p)))(p)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_tril_inverse_blocks():
    from widelab_bayes.repriorise import tril_inverse

    with float64():
        a = jax.random.normal(jax.random.key(9), (70, 70))
        L = jnp.tril(a) + 10 * jnp.eye(70)
        np.testing.assert_allclose(tril_inverse(L, leaf=8) @ L, jnp.eye(70), atol=1e-12)


@pytest.mark.parametrize("width, form", [(3, "primal"), (20, "dual")])
def test_every_matrix_product_runs_at_full_precision(width, form):
    """GPUs default to TF32 float32 products, too coarse for the repriorised density
    (GHMC's step collapsed on an H100). Every dot in the density, its gradient, the
    collapsed density and the predictions must ask for HIGHEST precision."""
    x, y = _data()
    rep = Repriorised(BNN(_fc(width), x, y, noise_std=0.3), form=form)
    p = rep.init(jax.random.key(0))

    def everything(p):
        return (
            jax.value_and_grad(rep.log_density)(p),
            jax.grad(rep.log_hidden_density)(p["hidden"]),
            rep.predict(p),
            rep.from_raw(rep.to_raw(p)),
        )

    text = jax.jit(everything).lower(p).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert len(dots) > 10
    assert all("precision = [HIGHEST, HIGHEST]" in line for line in dots), [
        line for line in dots if "HIGHEST, HIGHEST" not in line
    ][:3]
