"""GP inference and gradient-descent predictions: posterior identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import (
    gp_inference,
    gradient_descent,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    kernel_fn,
    max_learning_rate,
    mse_loss_grad,
)

NET = L.serial(L.Dense(64, W_std=1.5, b_std=0.1), L.Relu(), L.Dense(1, W_std=1.5, b_std=0.1))


def _data():
    x = jax.random.normal(jax.random.key(0), (12, 3))
    xt = jax.random.normal(jax.random.key(1), (5, 3))
    y = jnp.stack([jnp.sin(x[:, 0]), jnp.cos(x[:, 1])], axis=1)
    return x, xt, y


def test_t_inf_equals_cholesky_posterior_and_interpolation():
    with jax.enable_x64(True):
        x, xt, y = _data()
        x, xt, y = (a.astype(jnp.float64) for a in (x, xt, y))
        kf = kernel_fn(NET)
        ktt = kf(x, None, get=("nngp", "ntk"))
        kst = kf(xt, x, get=("nngp", "ntk"))
        kss = kf(xt, None, get="nngp")
        # NNGP posterior mean = NTK-free ensemble at t=inf when the NTK is the NNGP.
        gp = gp_inference(ktt.nngp, y)
        mean, cov = gp(kst.nngp, kss)
        dyn = gradient_descent_mse(ktt.nngp, y)
        _, f_inf = dyn(None, 0.0, None, kst.nngp)
        np.testing.assert_allclose(f_inf, mean, rtol=1e-8, atol=1e-10)
        # Explicit solve as the reference
        want = kst.nngp @ np.linalg.solve(ktt.nngp, y)
        np.testing.assert_allclose(mean, want, rtol=1e-8, atol=1e-10)
        want_cov = kss - kst.nngp @ np.linalg.solve(ktt.nngp, kst.nngp.T)
        np.testing.assert_allclose(cov, want_cov, atol=1e-10)
        # Training points are interpolated as the ridge goes to 0.
        errs = []
        for reg in (1e-2, 1e-4, 1e-6):
            m, c = gp_inference(ktt.nngp, y, diag_reg=reg)(ktt.nngp, ktt.nngp)
            errs.append(float(np.abs(m - y).max()))
            assert np.abs(np.diag(c)).max() < 10 * reg * float(np.trace(ktt.nngp))
        assert errs[0] > errs[1] > errs[2], errs
        assert errs[2] < 1e-3 * errs[0], errs
        # Ensemble at t=inf: mean Theta_* Theta^-1 y, covariance formula of Lee et al.
        ens = gradient_descent_mse_ensemble(ktt.nngp, ktt.ntk, y)
        em, ec = ens(None, kst.nngp, kst.ntk, kss)
        a = kst.ntk @ np.linalg.inv(ktt.ntk)
        np.testing.assert_allclose(em, a @ y, rtol=1e-7, atol=1e-9)
        want = kss - a @ kst.nngp.T - kst.nngp @ a.T + a @ ktt.nngp @ a.T
        np.testing.assert_allclose(ec, want, atol=1e-8)
        # A long finite time approaches t=inf, t=0 leaves the outputs unchanged.
        em_t, _ = ens(1e7, kst.nngp, kst.ntk)
        np.testing.assert_allclose(em_t, em, rtol=1e-4, atol=1e-6)
        em_0, _ = ens(0.0, kst.nngp, kst.ntk)
        np.testing.assert_allclose(em_0, 0.0, atol=1e-12)


def test_gradient_flow_matches_discrete_training_and_ode():
    with jax.enable_x64(True):
        x, xt, y = _data()
        ntk = kernel_fn(NET)(x.astype(jnp.float64), None, get="ntk")
        kst = kernel_fn(NET)(xt.astype(jnp.float64), x.astype(jnp.float64), get="ntk")
        lr = float(max_learning_rate(ntk, y.size)) * 0.05
        f0 = jnp.zeros_like(y, dtype=jnp.float64)
        # Discrete GD of the linearised model with small steps vs the closed form.
        f, steps = f0, 400
        for _ in range(steps):
            f = f - lr * ntk @ (f - y) / y.size
        closed = gradient_descent_mse(ntk, y, learning_rate=lr)(steps, f0)
        np.testing.assert_allclose(f, closed, rtol=2e-2, atol=2e-3)
        # RK4 integration of the same flow with the MSE gradient agrees tightly.
        ode = gradient_descent(ntk, y, learning_rate=lr, loss_grad=mse_loss_grad, n_steps=400)
        ftr, fte = ode(steps, f0, None, kst)
        ctr, cte = gradient_descent_mse(ntk, y, learning_rate=lr)(steps, f0, None, kst)
        np.testing.assert_allclose(ftr, ctr, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(fte, cte, rtol=1e-8, atol=1e-10)


def test_max_learning_rate_is_the_stability_edge():
    ntk = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    y = jnp.ones((2, 1))
    lr = float(max_learning_rate(ntk, y.size))
    lam = np.linalg.eigvalsh(np.asarray(ntk))[-1]
    assert lr == pytest.approx(2 * 2 / lam, rel=1e-6)
    for factor, grows in ((0.95, False), (1.05, True)):
        f = jnp.array([[3.0], [-1.0]])
        for _ in range(300):
            f = f - factor * lr * ntk @ (f - y) / y.size
        assert (float(jnp.abs(f - y).max()) > 1.0) == grows


def test_cross_entropy_flow_decreases_loss():
    x, xt, _ = _data()
    labels = (x[:, 0] > 0).astype(jnp.int32)
    y = jax.nn.one_hot(labels, 2)
    ntk = kernel_fn(NET)(x, None, get="ntk")
    ode = gradient_descent(ntk, y, learning_rate=1.0, n_steps=100)
    losses = [
        float(-jnp.mean(jnp.sum(y * jax.nn.log_softmax(ode(t, jnp.zeros_like(y))), -1)))
        for t in (0.0, 10.0, 100.0)
    ]
    assert losses[0] == pytest.approx(np.log(2), rel=1e-5)
    assert losses[0] > losses[1] > losses[2]


def test_bad_shapes():
    with pytest.raises(ValueError, match="k_train_train must be a square"):
        gp_inference(jnp.ones((3, 2)), jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="y_train must be"):
        gradient_descent_mse(jnp.eye(3), jnp.ones((4, 1)))
