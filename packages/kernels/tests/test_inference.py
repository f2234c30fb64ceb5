"""Tests of widelab_kernels.inference: GP posteriors and gradient-descent predictions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import widelab_kernels.nt as nt
from widelab_core import layers as L
from widelab_core.testing import float64
from widelab_kernels import kernel_fn
from widelab_kernels.inference import (
    Gaussian,
    cross_entropy_loss_grad,
    gp_inference,
    gradient_descent,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    max_learning_rate,
    mse_loss_grad,
)

N, M, K = 8, 5, 2


def _kernels(seed=0):
    """NNGP and NTK on train+test points as Gram matrices of random features."""
    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(N + M, 12))
    psi = rng.normal(size=(N + M, 20))
    nngp = phi @ phi.T / 12 + 0.1
    ntk = nngp + psi @ psi.T / 20
    y = rng.normal(size=(N, K))

    def split(k):
        return {"dd": k[:N, :N], "td": k[N:, :N], "tt": k[N:, N:]}

    return split(nngp), split(ntk), y


def _ktrain(nngp, ntk, part):
    return {"nngp": nngp[part], "ntk": ntk[part]}


def test_gp_nngp_posterior_matches_closed_form_and_is_psd():
    with float64():
        K_, T, y = _kernels()
        predict = gp_inference(_ktrain(K_, T, "dd"), y)
        res = predict("nngp", _ktrain(K_, T, "td"), K_["tt"])
        assert isinstance(res, Gaussian)
        sol = np.linalg.solve(K_["dd"], np.concatenate([y, K_["td"].T], axis=1))
        np.testing.assert_allclose(res.mean, K_["td"] @ sol[:, :K], atol=1e-10)
        cov = K_["tt"] - K_["td"] @ sol[:, K:]
        np.testing.assert_allclose(res.covariance, cov, atol=1e-10)
        assert np.linalg.eigvalsh(np.asarray(res.covariance)).min() > -1e-10
        # The Cholesky factor is cached: a second call reuses it and agrees.
        again = predict("nngp", K_["td"])
        np.testing.assert_allclose(again, res.mean, atol=1e-12)


def test_gp_ntk_posterior_matches_lee_et_al_closed_form():
    with float64():
        K_, T, y = _kernels(1)
        predict = gp_inference(_ktrain(K_, T, "dd"), y)
        res = predict(("nngp", "ntk"), _ktrain(K_, T, "td"), K_["tt"])
        a = np.linalg.solve(T["dd"], T["td"].T).T
        np.testing.assert_allclose(res.ntk.mean, a @ y, atol=1e-10)
        cov = K_["tt"] - a @ K_["td"].T - K_["td"] @ a.T + a @ K_["dd"] @ a.T
        np.testing.assert_allclose(res.ntk.covariance, cov, atol=1e-10)
        assert np.linalg.eigvalsh(np.asarray(res.ntk.covariance)).min() > -1e-10
        # The NTK-GP variance exceeds the Bayesian (NNGP) one or equals it: never
        # smaller than the NNGP posterior's diagonal minus the prior's.
        assert np.all(np.diag(res.ntk.covariance) >= np.diag(res.nngp.covariance) - 1e-10)


def test_gp_training_points_interpolated_as_regularisation_vanishes():
    with float64():
        K_, T, y = _kernels(2)
        errors = []
        for reg in (1e-2, 1e-4, 1e-6):
            predict = gp_inference(K_["dd"], y, diag_reg=reg)
            mean = predict("nngp", K_["dd"])
            errors.append(float(np.max(np.abs(mean - y))))
            # The regularised posterior is the ridge solution with ridge reg * trace/n.
            ridge = reg * np.trace(K_["dd"]) / N
            want = K_["dd"] @ np.linalg.solve(K_["dd"] + ridge * np.eye(N), y)
            np.testing.assert_allclose(mean, want, atol=1e-9)
        assert errors[0] > errors[1] > errors[2]
        assert errors[2] < 1e-4


def test_gd_mse_matches_matrix_exponential_and_euler():
    with float64():
        K_, T, y = _kernels(3)
        lr = 0.7
        predict = gradient_descent_mse(T["dd"], y, learning_rate=lr)
        rng = np.random.default_rng(0)
        f0, g0 = rng.normal(size=(N, K)), rng.normal(size=(M, K))
        ts = np.array([0.0, 3.0, 40.0])
        f_tr, f_te = predict(ts, f0, g0, T["td"])
        assert f_tr.shape == (3, N, K) and f_te.shape == (3, M, K)
        c = lr / y.size
        for i, t in enumerate(ts):
            e = scipy.linalg.expm(-c * t * T["dd"])
            np.testing.assert_allclose(f_tr[i], y + e @ (f0 - y), atol=1e-10)
            p = np.linalg.solve(T["dd"], np.eye(N) - e)
            np.testing.assert_allclose(f_te[i], g0 + T["td"] @ p @ (y - f0), atol=1e-10)
        # Explicit Euler of df/dt = -lr/|Y| Theta (f - y) with small steps.
        dt, f, g = 1e-3, f0.copy(), g0.copy()
        for _ in range(int(round(3.0 / dt))):
            r = f - y
            f, g = f - dt * c * T["dd"] @ r, g - dt * c * T["td"] @ r
        scale = np.abs(f0 - y).max()
        assert np.abs(f - f_tr[1]).max() < 1e-3 * scale
        assert np.abs(g - f_te[1]).max() < 1e-3 * scale
        # t = inf (Cholesky) is the limit of finite t (eigenbasis).
        f_inf, g_inf = predict(None, f0, g0, T["td"])
        np.testing.assert_allclose(f_inf, y, atol=1e-12)
        late = predict(1e6, f0, g0, T["td"])
        np.testing.assert_allclose(late[1], g_inf, atol=1e-8)
        np.testing.assert_allclose(predict(np.inf, f0, g0, T["td"])[1], g_inf, atol=1e-12)


def test_gd_mse_untraced_layout_and_jit():
    with float64():
        K_, T, y = _kernels(4)
        full = np.einsum("ij,ab->iajb", T["dd"], np.eye(K))
        full_td = np.einsum("ij,ab->iajb", T["td"], np.eye(K))
        a = gradient_descent_mse(T["dd"], y)(2.0, 0.5, 0.0, T["td"])
        b = gradient_descent_mse(full, y, trace_axes=())(2.0, 0.5, 0.0, full_td)
        np.testing.assert_allclose(a[0], b[0], atol=1e-12)
        np.testing.assert_allclose(a[1], b[1], atol=1e-12)
        predict = gradient_descent_mse(T["dd"], y)
        jitted = jax.jit(lambda t: predict(t, 0.0, None, T["td"]))
        np.testing.assert_allclose(jitted(2.0)[1], predict(2.0, 0.0, None, T["td"])[1], atol=1e-12)
        np.testing.assert_allclose(jitted(5.0)[1], predict(5.0, 0.0, None, T["td"])[1], atol=1e-12)


def test_single_network_and_ensemble_agree():
    with float64():
        K_, T, y = _kernels(5)
        lr, t = 1.3, 6.0
        ens = gradient_descent_mse_ensemble(_ktrain(K_, T, "dd"), y, learning_rate=lr)
        res = ens(
            t,
            get=("nngp", "ntk"),
            compute_cov=True,
            k_test_train=_ktrain(K_, T, "td"),
            k_test_test=K_["tt"],
        )
        for g, kern in (("nngp", K_), ("ntk", T)):
            single = gradient_descent_mse(kern["dd"], y, learning_rate=lr)
            _, mean = single(t, 0.0, 0.0, kern["td"])
            np.testing.assert_allclose(getattr(res, g).mean, mean, atol=1e-10)

            # The ensemble covariance is Cov[f_t(x)] for f_0 ~ GP(0, NNGP): push the
            # joint prior through the single network's (affine) predictor.
            def test_out(f_all, single=single, kern=kern):
                f_tr = jnp.broadcast_to(f_all[:N, None], (N, K))
                f_te = jnp.broadcast_to(f_all[N:, None], (M, K))
                return single(t, f_tr, f_te, kern["td"])[1][:, 0]

            jac = jax.jacobian(test_out)(jnp.zeros(N + M))
            prior = np.block([[K_["dd"], K_["td"].T], [K_["td"], K_["tt"]]])
            np.testing.assert_allclose(getattr(res, g).covariance, jac @ prior @ jac.T, atol=1e-9)
        # t = None is the GP posterior.
        inf = ens(
            None,
            get="ntk",
            compute_cov=True,
            k_test_train=_ktrain(K_, T, "td"),
            k_test_test=K_["tt"],
        )
        gp = gp_inference(_ktrain(K_, T, "dd"), y)("ntk", _ktrain(K_, T, "td"), K_["tt"])
        np.testing.assert_allclose(inf.covariance, gp.covariance, atol=1e-10)
        late = ens(1e7, get="ntk", k_test_train=_ktrain(K_, T, "td"))
        np.testing.assert_allclose(late, gp.mean, atol=1e-7)


def test_ensemble_with_kernel_fn():
    with float64():
        rng = np.random.default_rng(6)
        x_tr, x_te = rng.normal(size=(N, 3)), rng.normal(size=(M, 3))
        y = rng.normal(size=(N, 1))
        calls = []

        def kernel_fn(x1, x2, get):
            calls.append((x1.shape[0], None if x2 is None else x2.shape[0], get))
            x2 = x1 if x2 is None else x2
            lin = x1 @ x2.T / 3
            ks = {"nngp": np.exp(lin), "ntk": np.exp(lin) + (lin + 1.0) ** 2}
            return ks[get] if isinstance(get, str) else {g: ks[g] for g in get}

        ens = gradient_descent_mse_ensemble(kernel_fn, y, x_train=x_tr)
        out = ens(4.0, x_te, get="ntk", compute_cov=True)
        ks = kernel_fn(np.concatenate([x_tr, x_te]), None, ("nngp", "ntk"))
        split = {g: {"dd": v[:N, :N], "td": v[N:, :N], "tt": v[N:, N:]} for g, v in ks.items()}
        ref = gradient_descent_mse_ensemble({g: split[g]["dd"] for g in ks}, y)(
            4.0,
            get="ntk",
            compute_cov=True,
            k_test_train={g: split[g]["td"] for g in ks},
            k_test_test=split["nngp"]["tt"],
        )
        np.testing.assert_allclose(out.mean, ref.mean, atol=1e-12)
        np.testing.assert_allclose(out.covariance, ref.covariance, atol=1e-12)
        n_train_calls = sum(1 for c in calls if c[0] == N and c[1] is None)
        ens(9.0, x_te, get="ntk", compute_cov=True)
        assert sum(1 for c in calls if c[0] == N and c[1] is None) == n_train_calls  # cached
        # Without test inputs: predictions on the training set converge to y.
        np.testing.assert_allclose(ens(None, get="nngp"), y, atol=1e-8)


def _gd_loss(x, y, w0, lr, steps, momentum=0.0):
    w, v = w0.copy(), np.zeros_like(w0)
    for _ in range(steps):
        v = momentum * v - lr * x.T @ (x @ w - y) / y.size
        w = w + v
    return 0.5 * np.mean((x @ w - y) ** 2)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_max_learning_rate_is_the_divergence_boundary(momentum):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 10))
    y = rng.normal(size=(6, 3))
    w0 = rng.normal(size=(10, 3))
    lr_max = max_learning_rate(x @ x.T, y_train_size=y.size, momentum=momentum)
    loss0 = 0.5 * np.mean((x @ w0 - y) ** 2)
    assert _gd_loss(x, y, w0, 0.98 * lr_max, 3000, momentum) < 1e-6 * loss0
    assert _gd_loss(x, y, w0, 1.02 * lr_max, 3000, momentum) > 1e6 * loss0


def _softmax_ce_grad(f, y):
    e = np.exp(f - f.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True) - y) / f.shape[0]


def test_cross_entropy_ode_matches_small_step_gradient_descent():
    with float64():
        K_, T, _ = _kernels(8)
        rng = np.random.default_rng(8)
        y = np.eye(3)[rng.integers(0, 3, size=N)]
        ce = lambda f, yy: -jnp.mean(jnp.sum(yy * jax.nn.log_softmax(f, axis=-1), axis=-1))
        lr = 2.0
        predict = gradient_descent(ce, T["dd"], y, learning_rate=lr)
        f0, g0 = 0.3 * rng.normal(size=(N, 3)), 0.3 * rng.normal(size=(M, 3))
        ts = np.array([1.0, 5.0])
        f_tr, f_te = predict(ts, f0, g0, T["td"])
        # Discrete gradient descent with step lr * h approximates the flow at t = steps * h.
        h, f, g, out = 1e-3, f0.copy(), g0.copy(), []
        for step in range(1, int(round(5.0 / h)) + 1):
            d = _softmax_ce_grad(f, y)
            f, g = f - h * lr * T["dd"] @ d, g - h * lr * T["td"] @ d
            if step in (int(round(1.0 / h)), int(round(5.0 / h))):
                out.append((f.copy(), g.copy()))
        for i in range(2):
            np.testing.assert_allclose(f_tr[i], out[i][0], atol=2e-3)
            np.testing.assert_allclose(f_te[i], out[i][1], atol=2e-3)
        assert np.abs(f_tr[1] - f0).max() > 0.1  # it did train


def test_gradient_descent_mse_loss_and_momentum_closed_forms():
    with float64():
        K_, T, y = _kernels(9)
        mse = lambda f, yy: 0.5 * jnp.mean((f - yy) ** 2)
        t = 7.0
        ode = gradient_descent(mse, T["dd"], y, learning_rate=0.8)(t, 0.2, 0.0, T["td"])
        exact = gradient_descent_mse(T["dd"], y, learning_rate=0.8)(t, 0.2, 0.0, T["td"])
        np.testing.assert_allclose(ode[0], exact[0], atol=1e-7)
        np.testing.assert_allclose(ode[1], exact[1], atol=1e-7)
        # Momentum: r'' + (1 - m) r' + c lam r = 0 per eigenvector, r'(0) = 0.
        m, lr = 0.6, 0.8
        got = gradient_descent(mse, T["dd"], y, learning_rate=lr, momentum=m)(t, 0.2)
        lam, vec = np.linalg.eigh(T["dd"])
        gam, c = 1.0 - m, lr / y.size
        w = np.sqrt((gam**2 / 4 - c * lam).astype(complex))
        w = np.where(np.abs(w) < 1e-12, 1e-12, w)
        decay = np.real(np.exp(-gam * t / 2) * (np.cosh(w * t) + gam / (2 * w) * np.sinh(w * t)))
        want = y + vec @ (decay[:, None] * (vec.T @ (0.2 - y)))
        np.testing.assert_allclose(got, want, atol=1e-7)


def test_gradient_descent_infinite_time_is_the_end_of_training():
    """t=None: with MSE (and momentum) the flow's limit is the kernel regression fit,
    gradient_descent_mse's closed form at t=inf; cross-entropy on separable data has no
    limit (outputs grow like log t), which is an error, and NaN under jit."""
    with float64():
        K_, T, y = _kernels(12)
        mse = lambda f, yy: 0.5 * jnp.mean((f - yy) ** 2)
        exact = gradient_descent_mse(T["dd"], y)(None, 0.2, 0.0, T["td"])
        for m in (None, 0.5):
            got = gradient_descent(mse, T["dd"], y, learning_rate=2.0, momentum=m)(
                None, 0.2, 0.0, T["td"]
            )
            np.testing.assert_allclose(got[0], y, atol=1e-6)
            np.testing.assert_allclose(got[1], exact[1], atol=1e-6)
        # NT's calling form: t=None is infinite time there too.
        nt_fn = nt.predict.gradient_descent(mse, T["dd"], y, learning_rate=2.0)
        np.testing.assert_allclose(nt_fn(None, 0.2, 0.0, T["td"])[1], exact[1], atol=1e-6)
        y1 = np.eye(2)[np.arange(N) % 2]
        ce = lambda f, yy: -jnp.mean(jnp.sum(yy * jax.nn.log_softmax(f, axis=-1), axis=-1))
        predict = gradient_descent(ce, T["dd"], y1)
        with pytest.raises(ValueError, match="did not converge"):
            predict(None, 0.0)
        assert np.all(np.isnan(np.asarray(jax.jit(lambda f0: predict(None, f0))(0.0))))


def test_float32_defaults():
    K_, T, y = _kernels(10)
    out = gradient_descent_mse(T["dd"].astype(np.float32), y.astype(np.float32))(2.0, 0.0)
    assert out.dtype == jnp.float32
    mean = gp_inference(K_["dd"].astype(np.float32), y, diag_reg=1e-4)("nngp", K_["td"])
    assert mean.dtype == jnp.float32 and mean.shape == (M, K)


def test_bad_inputs_have_clear_errors():
    K_, T, y = _kernels(11)
    with pytest.raises(ValueError, match=r"k_train_train.*shape \(8, 8\)"):
        gradient_descent_mse(T["dd"][:5, :5], y)
    with pytest.raises(ValueError, match="y_train must be"):
        gp_inference(K_["dd"], y[:, 0])
    bad = K_["dd"].copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        gp_inference(bad, y)
    with pytest.raises(ValueError, match="not symmetric"):
        gradient_descent_mse(K_["dd"] + np.triu(np.ones((N, N)), 1), y)
    indefinite = K_["dd"] - 2 * np.linalg.eigvalsh(K_["dd"]).max() * np.eye(N) / 3
    with pytest.raises(ValueError, match="not positive semi-definite"):
        gradient_descent_mse(indefinite, y)(1.0)
    with pytest.raises(ValueError, match="not positive definite"):
        gp_inference(indefinite, y)("nngp", K_["td"])
    with pytest.raises(ValueError, match="needs? both|'nngp'"):
        gp_inference(T["dd"], y)("ntk", T["td"], K_["tt"])
    with pytest.raises(ValueError, match="t must be >= 0"):
        gradient_descent_mse(T["dd"], y)(-1.0)
    with pytest.raises(ValueError, match="fx_test_0 given without k_test_train"):
        gradient_descent_mse(T["dd"], y)(1.0, 0.0, np.zeros((M, K)))
    with pytest.raises(ValueError, match=r"k_test_train must have shape"):
        gradient_descent_mse(T["dd"], y)(1.0, 0.0, None, T["td"][:, :3])
    with pytest.raises(ValueError, match="momentum"):
        max_learning_rate(T["dd"], momentum=1.0)
    with pytest.raises(ValueError, match="x_train"):
        gradient_descent_mse_ensemble(lambda a, b, get: a, y)


# Checks on kernels of a real network (ported from the former predict module's tests).

NET = L.serial(L.Dense(64, W_std=1.5, b_std=0.1), L.Relu(), L.Dense(1, W_std=1.5, b_std=0.1))


def _net_data():
    x = jax.random.normal(jax.random.key(0), (12, 3))
    xt = jax.random.normal(jax.random.key(1), (5, 3))
    y = jnp.stack([jnp.sin(x[:, 0]), jnp.cos(x[:, 1])], axis=1)
    return x, xt, y


def test_network_kernels_posterior_ensemble_limits_and_loss_grad():
    with float64():
        x, xt, y = (a.astype(jnp.float64) for a in _net_data())
        kf = kernel_fn(NET)
        ktt = kf(x, None, get=("nngp", "ntk"))
        kst = kf(xt, x, get=("nngp", "ntk"))
        kss = kf(xt, None, get="nngp")
        post = gp_inference(ktt, y)("nngp", kst, kss)
        np.testing.assert_allclose(
            post.mean, kst.nngp @ np.linalg.solve(ktt.nngp, y), rtol=1e-8, atol=1e-10
        )
        want_cov = kss - kst.nngp @ np.linalg.solve(ktt.nngp, kst.nngp.T)
        np.testing.assert_allclose(post.covariance, want_cov, atol=1e-10)
        # Gradient flow with the NNGP as tangent kernel converges to the NNGP posterior mean.
        _, f_inf = gradient_descent_mse(ktt.nngp, y)(None, 0.0, None, kst.nngp)
        np.testing.assert_allclose(f_inf, post.mean, rtol=1e-8, atol=1e-10)
        # Ensemble: t = 0 is the prior (zero mean, NNGP covariance); long t approaches inf.
        ens = gradient_descent_mse_ensemble(ktt, y)
        kw = dict(get="ntk", k_test_train=kst)
        at0 = ens(0.0, compute_cov=True, k_test_test=kss, **kw)
        np.testing.assert_allclose(at0.mean, 0.0, atol=1e-12)
        np.testing.assert_allclose(at0.covariance, kss, atol=1e-10)
        np.testing.assert_allclose(ens(1e7, **kw), ens(None, **kw), rtol=1e-4, atol=1e-6)
        # The loss_grad form of gradient_descent reproduces the closed form.
        lr = float(max_learning_rate(ktt.ntk, y.size)) * 0.05
        ode = gradient_descent(None, ktt.ntk, y, learning_rate=lr, loss_grad=mse_loss_grad)
        ftr, fte = ode(400.0, 0.0, None, kst.ntk)
        ctr, cte = gradient_descent_mse(ktt.ntk, y, learning_rate=lr)(400.0, 0.0, None, kst.ntk)
        np.testing.assert_allclose(ftr, ctr, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(fte, cte, rtol=1e-7, atol=1e-9)


def test_loss_grad_helpers_and_cross_entropy_flow():
    x, _, _ = _net_data()
    y = jax.nn.one_hot((x[:, 0] > 0).astype(jnp.int32), 2)
    f = jax.random.normal(jax.random.key(3), y.shape)
    ce = lambda ff: -jnp.mean(jnp.sum(y * jax.nn.log_softmax(ff, axis=-1), axis=-1))
    np.testing.assert_allclose(cross_entropy_loss_grad(f, y), jax.grad(ce)(f), atol=1e-6)
    mse = lambda ff: 0.5 * jnp.mean((ff - y) ** 2)
    np.testing.assert_allclose(mse_loss_grad(f, y), jax.grad(mse)(f), atol=1e-7)
    ntk = kernel_fn(NET)(x, None, get="ntk")
    ode = gradient_descent(None, ntk, y, loss_grad=cross_entropy_loss_grad)
    outs = ode(jnp.array([0.0, 10.0, 100.0]), 0.0)
    losses = [float(ce(o)) for o in outs]
    assert losses[0] == pytest.approx(np.log(2), rel=1e-5)
    assert losses[0] > losses[1] > losses[2]
    with pytest.raises(ValueError, match="loss or a loss_grad"):
        gradient_descent(None, ntk, y)


def test_max_learning_rate_closed_form():
    ntk = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    lam = np.linalg.eigvalsh(np.asarray(ntk))[-1]
    assert float(max_learning_rate(ntk, 2)) == pytest.approx(2 * 2 / lam, rel=1e-6)
    assert float(max_learning_rate(ntk, 2, momentum=0.5)) == pytest.approx(6 / lam, rel=1e-6)
