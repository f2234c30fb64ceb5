"""``widelab_kernels.nt.predict``: NTK-GP, NT's kernel layouts and ``trace_axes``.

``nt_predict_programs.py`` runs unchanged with Neural Tangents 0.6.5 (fixtures in
``data/nt_predict.npz``, written by ``benchmarks/nt_predict_reference.py``) and with
``widelab_kernels.nt``. The finite-time NTK-GP ensemble, which NT 0.6.5 refuses, is
checked against the linearised dynamics started at the NTK prior, computed directly.
"""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest
import widelab_kernels.nt as nt
from scipy.linalg import expm
from widelab_kernels.nt import predict, stax

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "nt_predict_programs", HERE / "nt_predict_programs.py"
)
programs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(programs)
REFERENCE = np.load(HERE / "data" / "nt_predict.npz")

# ODE solutions (gradient_descent) agree to the solvers' tolerances, not to round-off.
LOOSE = {"untraced/gd_train": 1e-6, "untraced/gd_test": 1e-6}


def test_predict_programs_match_neural_tangents():
    with jax.enable_x64(True):
        outs = {name: program(nt, stax, predict) for name, program in programs.PROGRAMS.items()}
    got = {f"{name}/{k}": v for name, out in outs.items() for k, v in out.items()}
    assert set(got) == set(REFERENCE.files)
    for key in REFERENCE.files:
        ref, val = REFERENCE[key], np.asarray(got[key])
        assert val.shape == ref.shape, (key, val.shape, ref.shape)
        tol = LOOSE.get(key, 1e-9)
        np.testing.assert_allclose(val, ref, rtol=tol, atol=tol * np.abs(ref).max(), err_msg=key)


def _linearised_ntkgp(theta, tr, te, y, tau, reg):
    """Mean and covariance of f_t(x) = f_0(x) + Theta_xX P_t (Y - f_0(X)) with
    f_0 ~ GP(0, Theta), written as one linear map of (f_0(x), f_0(X), Y); the regulariser
    acts as observation noise, on the training block of the prior too (as at t = inf)."""
    t_dd = theta[np.ix_(tr, tr)] + reg * np.eye(len(tr))
    p = np.linalg.solve(t_dd, np.eye(len(tr)) - expm(-tau * t_dd))
    a = theta[np.ix_(te, tr)] @ p
    lin = np.concatenate([np.eye(len(te)), -a], axis=1)  # acts on (f_0(x), f_0(X))
    idx = np.concatenate([te, tr])
    prior = theta[np.ix_(idx, idx)] + reg * np.diag(np.isin(idx, tr).astype(float))
    return a @ y, lin @ prior @ lin.T


def test_ensemble_ntkgp_is_the_linearised_flow_from_the_ntk_prior():
    n, m = 5, 3
    with jax.enable_x64(True):
        x = np.random.default_rng(0).standard_normal((n + m, 4))
        _, _, kernel_fn = stax.serial(
            stax.Dense(16, W_std=1.4, b_std=0.1), stax.Erf(), stax.Dense(1)
        )
        theta = np.asarray(kernel_fn(x, None, "ntk"))
        y = np.random.default_rng(1).standard_normal((n, 2))
        x_train, x_test = x[:n], x[n:]
        lr, reg = 0.8, 1e-3
        ens = predict.gradient_descent_mse_ensemble(
            kernel_fn, x_train, y, learning_rate=lr, diag_reg=reg, diag_reg_absolute_scale=True
        )
        times = np.array([0.5, 6.0])
        res = ens(times, x_test, "ntkgp", compute_cov=True)
        for i, t in enumerate(times):
            mean, cov = _linearised_ntkgp(
                theta, np.arange(n), np.arange(n, n + m), y, lr * t / y.size, reg
            )
            np.testing.assert_allclose(res.mean[i], mean, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(res.covariance[i], cov, rtol=1e-9, atol=1e-12)
        # t = None is the NTK-GP posterior of gp_inference, and the late-time limit.
        inf = ens(None, x_test, "ntkgp", compute_cov=True)
        k_dd = kernel_fn(x_train, None, "ntk")
        gp = predict.gp_inference(k_dd, y, diag_reg=reg, diag_reg_absolute_scale=True)
        ref = gp("ntkgp", kernel_fn(x_test, x_train, "ntk"), kernel_fn(x_test, None, "ntk"))
        np.testing.assert_allclose(inf.mean, ref.mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(inf.covariance, ref.covariance, rtol=1e-9, atol=1e-12)
        late = ens(1e9, x_test, "ntkgp", compute_cov=True)
        np.testing.assert_allclose(late.covariance, inf.covariance, atol=1e-9)
        # Training inputs: the same flow with the regularised kernel as test-train kernel.
        on_train = ens(2.0, None, ("ntk", "ntkgp"), compute_cov=True)
        t_reg = theta[:n, :n] + reg * np.eye(n)
        decay = expm(-lr * 2.0 / y.size * t_reg)
        np.testing.assert_allclose(on_train.ntkgp.mean, (np.eye(n) - decay) @ y, atol=1e-10)
        np.testing.assert_allclose(on_train.ntkgp.covariance, t_reg @ decay @ decay, atol=1e-10)
        np.testing.assert_allclose(on_train.ntk.mean, on_train.ntkgp.mean, atol=1e-12)


def test_layouts_and_errors():
    y = np.zeros((3, 2))
    with pytest.raises(ValueError, match="batch axis 0"):
        predict.gp_inference(np.eye(3), y, trace_axes=(0,))
    with pytest.raises(ValueError, match=r"zip\(S, S\) with S = \(3, 2\)"):
        predict.gradient_descent_mse(np.eye(3), y, trace_axes=())
    with pytest.raises(ValueError, match="outside y_train"):
        predict.gp_inference(np.eye(3), y, trace_axes=(2,))
    gp = predict.gp_inference(np.eye(3), y)
    with pytest.raises(ValueError, match="get must be one of"):
        gp("nngpp", np.eye(3))
    mse = predict.gradient_descent_mse(np.eye(3), y)
    with pytest.raises(ValueError, match="both None"):
        mse(1.0, None, None)
    with pytest.raises(ValueError, match="k_test_train is None"):
        mse(1.0, 0.0, np.zeros((2, 2)))
    # max_learning_rate reads NT's interleaved (n, n, k, k) layout.
    full = np.einsum("ij,ab->ijab", np.diag([1.0, 2.0, 4.0]), np.diag([1.0, 0.5]))
    assert predict.max_learning_rate(full) == pytest.approx(2 * 6 / 4.0)
