"""Bad input to the kernel function and the inference helpers: a clear error, never a
silently NaN or meaningless number; plus property tests on random inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from widelab_core import layers as L
from widelab_kernels import (
    gp_inference,
    gradient_descent,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    kernel_fn,
    max_learning_rate,
)

NET = L.serial(L.Dense(8, W_std=1.5, b_std=0.1), L.Relu(), L.Dense(1, W_std=1.5))
KFN = kernel_fn(NET)
X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["x1", "x2"])
def test_kernel_fn_rejects_non_finite_inputs(bad, which):
    y = X.copy()
    y[2, 1] = bad
    args = (y, None) if which == "x1" else (X, y)
    with pytest.raises(ValueError, match=rf"kernel_fn: {which} must be finite, got .* \(2, 1\)"):
        KFN(*args, get="nngp")


def test_kernel_fn_rejects_nan_hyperparameter():
    net = L.serial(L.Dense(8, W_std=float("nan")), L.Relu(), L.Dense(1))
    with pytest.raises(ValueError, match=r"Dense\(.*\) has W_std=nan"):
        kernel_fn(net)(X, None, get="ntk")
    net = L.serial(L.Dense(8), L.Relu(), L.Dense(1, b_std=float("inf")))
    with pytest.raises(ValueError, match="has b_std=inf"):
        kernel_fn(net, batch_size=2)(X, None, get="nngp")


def test_kernel_fn_rejects_overflowing_result():
    with pytest.raises(ValueError, match="the computed nngp holds NaN or inf"):
        KFN(X * 1e30, None, get="nngp")


def test_check_finite_can_be_turned_off():
    y = X.copy()
    y[2, 1] = np.nan
    k = kernel_fn(NET, check_finite=False)(y, None, get="nngp")
    # unchecked, the NaN spreads (and even hides: the (2, 2) entry comes out finite)
    assert np.isnan(np.asarray(k)[2]).any() and np.isfinite(np.asarray(k)[0, 0])


def test_mask_constant_entries_are_not_errors():
    net = L.serial(L.Dense(4), L.GlobalAvgPool())
    x = np.ones((2, 3, 2), np.float32)
    x[0, 2] = np.inf  # padding
    k = kernel_fn(net)(x, None, get="nngp", mask_constant=np.inf)
    assert np.isfinite(np.asarray(k)).all()


def test_kernel_fn_under_jit_and_grad_still_works():
    f = jax.jit(lambda x: KFN(x, None, get="nngp"))
    assert f(X).shape == (5, 5)

    def loss(w):
        net = L.serial(L.Dense(8, W_std=w), L.Relu(), L.Dense(1))
        return jnp.sum(kernel_fn(net)(X, None, get="nngp"))

    assert np.isfinite(float(jax.grad(loss)(1.5)))


@pytest.mark.parametrize(
    ("k", "message"),
    [
        (np.zeros((3, 3)), "has no positive eigenvalue"),
        (
            np.array([[1.0, 2.0], [2.0, 1.0]]),
            "is not positive semi-definite: smallest eigenvalue -1",
        ),
        (-np.eye(2), "has no positive eigenvalue"),
        (np.zeros((0, 0)), "is empty"),
    ],
)
def test_max_learning_rate_needs_a_psd_nonzero_kernel(k, message):
    with pytest.raises(ValueError, match=f"max_learning_rate: ntk_train_train {message}"):
        max_learning_rate(k)


@pytest.mark.parametrize("lr", [-1.0, 0.0, float("nan"), float("inf")])
def test_learning_rate_must_be_positive(lr):
    k = {"nngp": jnp.eye(2), "ntk": 2.0 * jnp.eye(2)}
    y = jnp.ones((2, 1))
    with pytest.raises(ValueError, match="gradient_descent_mse_ensemble: learning_rate must be"):
        gradient_descent_mse_ensemble(k, y, learning_rate=lr)
    with pytest.raises(ValueError, match="gradient_descent_mse: learning_rate must be"):
        gradient_descent_mse(jnp.eye(2), y, learning_rate=lr)
    with pytest.raises(ValueError, match="gradient_descent: learning_rate must be"):
        gradient_descent(lambda f, t: jnp.mean((f - t) ** 2), jnp.eye(2), y, learning_rate=lr)


def test_negative_diag_reg():
    with pytest.raises(ValueError, match="gp_inference: diag_reg must be a finite number >= 0"):
        gp_inference(jnp.eye(2), jnp.ones((2, 1)), diag_reg=-1e-3)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    momentum=st.sampled_from([0.0, 0.5]),
)
def test_max_learning_rate_of_random_psd_kernels(n, seed, scale, momentum):
    a = np.random.default_rng(seed).normal(size=(n, n + 1)) * scale
    k = a @ a.T
    lam = np.linalg.eigvalsh(k)[-1]
    assert max_learning_rate(k, momentum=momentum) == pytest.approx(
        2 * (1 + momentum) * n / (lam + 1e-12), rel=1e-9
    )


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 6),
    seed=st.integers(0, 2**16),
    shift=st.floats(0.05, 10.0),
)
def test_max_learning_rate_rejects_any_clearly_indefinite_kernel(n, seed, shift):
    a = np.random.default_rng(seed).normal(size=(n, n))
    k = a @ a.T
    lam = np.linalg.eigvalsh(k)
    k = k - (lam[0] + shift * (1 + lam[-1])) * np.eye(n)  # smallest eigenvalue < 0
    with pytest.raises(ValueError, match="max_learning_rate"):
        max_learning_rate(k)


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(1, 4),
    d=st.sampled_from([1, 3]),
    pos=st.data(),
    bad=st.sampled_from([np.nan, np.inf, -np.inf, 0.0]),
)
def test_kernel_fn_random_inputs(n, d, pos, bad):
    x = np.random.default_rng(n * 10 + d).normal(size=(n, d)).astype(np.float32)
    i = pos.draw(st.integers(0, n - 1))
    j = pos.draw(st.integers(0, d - 1))
    x[i, j] = bad
    if np.isfinite(bad):
        k = KFN(x, None, get=("nngp", "ntk"))
        assert np.isfinite(np.asarray(k.nngp)).all() and np.isfinite(np.asarray(k.ntk)).all()
        assert np.allclose(np.asarray(k.nngp), np.asarray(k.nngp).T, rtol=1e-5, atol=1e-6)
    else:
        with pytest.raises(ValueError, match=rf"x1 must be finite, got .* \({i}, {j}\)"):
            KFN(x, None, get=("nngp", "ntk"))
