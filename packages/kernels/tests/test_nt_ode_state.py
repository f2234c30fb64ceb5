"""NT's ``ODEState`` form of ``predict.gradient_descent`` and widelab's initial velocities
and returned states: Neural Tangents 0.6.5 fixtures (``data/nt_ode_state.npz``, written by
``benchmarks/nt_predict_reference.py nt_ode_state_programs.py``), the closed form of
momentum on MSE from a moving start, resuming a flow from its state, jit and errors."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import widelab_kernels.nt as nt
from widelab_core.testing import load_sibling
from widelab_kernels import GradientDescentState, gradient_descent
from widelab_kernels.nt import predict, stax

programs = load_sibling(__file__, "nt_ode_state_programs")
REFERENCE = np.load(pathlib.Path(__file__).resolve().parent / "data" / "nt_ode_state.npz")


def test_ode_state_programs_match_neural_tangents():
    with jax.enable_x64(True):
        got = {
            f"{name}/{key}": np.asarray(value)
            for name, program in programs.PROGRAMS.items()
            for key, value in program(nt, stax, predict).items()
        }
    assert sorted(got) == sorted(REFERENCE.files)
    for key in REFERENCE.files:
        want = REFERENCE[key]
        # two adaptive ODE solvers (NT's rtol = atol = 1.4e-8, widelab's 1e-9)
        np.testing.assert_allclose(got[key], want, rtol=1e-6, atol=1e-7, err_msg=key)
    # the fixtures do move: a velocity changes the outputs
    moving, rest = REFERENCE["momentum/moving_fx_train"], REFERENCE["momentum/rest_fx_train"]
    assert np.max(np.abs(moving[1] - moving[0])) > 0.1 and rest.shape == moving.shape[1:]


def _closed_form(k, y, f0, v0, lr, m, t):
    """MSE ``0.5 mean((f - y)^2)`` with heavy-ball momentum: per eigenvector of ``k`` the
    residual obeys ``r'' + (1 - m) r' + c lam r = 0``, ``c = lr / y.size``, from ``r(0)``
    and ``r'(0)``; returns ``f(t)`` and ``f'(t)``."""
    lam, vec = np.linalg.eigh(k)
    gam, c = 1.0 - m, lr / y.size
    w = np.sqrt((gam**2 / 4 - c * lam).astype(complex))[:, None]
    r0, dr0 = vec.T @ (f0 - y), vec.T @ v0
    e = np.exp(-gam * t / 2)
    ch, sh = np.cosh(w * t), np.sinh(w * t) / w
    r = np.real(e * (r0 * ch + (gam * r0 / 2 + dr0) * sh))
    dr = np.real(e * (dr0 * ch - (c * lam[:, None] * r0 + gam * dr0 / 2) * sh))
    return y + vec @ r, vec @ dr


def test_momentum_from_a_moving_state_closed_form_resume_and_jit():
    k_dd, k_td, y, f_tr, f_te, q_tr, q_te = programs._problem(5)
    mse = lambda f, yy: 0.5 * jnp.mean((f - yy) ** 2)
    lr, m = 0.8, 0.6
    with jax.enable_x64(True):
        native = gradient_descent(mse, k_dd, y, learning_rate=lr, momentum=m)
        ts = np.array([1.0, 4.0])
        st = native(ts, f_tr, velocity_train_0=q_tr, return_state=True)
        assert isinstance(st, GradientDescentState) and st.fx_test is None
        for i, t in enumerate(ts):
            f, v = _closed_form(k_dd, y, f_tr, q_tr, lr, m, t)
            np.testing.assert_allclose(st.fx_train[i], f, atol=1e-7)
            np.testing.assert_allclose(st.velocity_train[i], v, atol=1e-7)
        # Stopped at t1 and resumed from its state for t2 - t1 steps = one run to t2,
        # test outputs and velocities included (NT's form, qx in its own units).
        nt_fn = predict.gradient_descent(mse, k_dd, y, learning_rate=lr, momentum=m)
        start = predict.ODEState(f_tr, f_te, q_tr, q_te)
        whole = jax.jit(lambda s: nt_fn(3.0, s, None, k_td))(start)
        half = nt_fn(1.2, start, None, k_td)
        resumed = nt_fn(1.8, half, None, k_td)
        for name in ("fx_train", "fx_test", "qx_train", "qx_test"):
            np.testing.assert_allclose(
                getattr(resumed, name), getattr(whole, name), atol=1e-7, err_msg=name
            )

    plain = predict.gradient_descent(mse, k_dd, y)
    with pytest.raises(ValueError, match="momentum"):
        plain(1.0, predict.ODEState(f_tr, None, q_tr))
    with pytest.raises(ValueError, match="fx_test_0"):
        plain(1.0, predict.ODEState(f_tr), f_te, k_td)
    with pytest.raises(ValueError, match="momentum is None"):
        gradient_descent(mse, k_dd, y)(1.0, f_tr, velocity_train_0=q_tr)
    with pytest.raises(ValueError, match="k_test_train"):
        native(1.0, f_tr, velocity_test_0=q_te)
