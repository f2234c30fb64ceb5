"""Tests of widelab_kernels.finite_width: empirical and Monte Carlo NNGP / NTK."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_core.testing import float64, standard_error
from widelab_kernels.finite_width import (
    IMPLEMENTATIONS,
    empirical_kernel_fn,
    empirical_nngp_fn,
    empirical_ntk_fn,
    monte_carlo_kernel_fn,
)


def _inputs(n=4, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_linear_model_ntk_closed_form(parameterization):
    with float64():
        x1, x2 = _inputs(4), _inputs(3, seed=1)
        s, b, k, d = 1.7, 0.3, 2, x1.shape[1]
        net = L.Dense(k, W_std=s, b_std=b, parameterization=parameterization)
        _, params = net.init(jax.random.key(0), x1.shape)
        # NTK parameterization: d f / dW = s / sqrt(d) x, d f / db = b;
        # standard: d f / dW = x, d f / db = 1.
        if parameterization == "ntk":
            per_output = s**2 / d * x1 @ x2.T + b**2
        else:
            per_output = x1 @ x2.T + 1.0
        for impl in IMPLEMENTATIONS:
            ntk = empirical_ntk_fn(net.apply, implementation=impl)(x1, x2, params)
            np.testing.assert_allclose(ntk, per_output, atol=1e-12)
            full = empirical_ntk_fn(net.apply, trace_axes=(), implementation=impl)(x1, x2, params)
            assert full.shape == (4, 3, k, k)
            np.testing.assert_allclose(
                full, np.einsum("ij,ab->ijab", per_output, np.eye(k)), atol=1e-12
            )
            diag = empirical_ntk_fn(net.apply, diagonal_axes=(0,), implementation=impl)(
                x1, None, params
            )
            np.testing.assert_allclose(
                diag,
                np.diag(s**2 / d * x1 @ x1.T + b**2)
                if parameterization == "ntk"
                else np.diag(x1 @ x1.T + 1.0),
                atol=1e-12,
            )


def test_one_hidden_layer_ntk_and_nngp_closed_form():
    with float64():
        x1, x2 = _inputs(4), _inputs(3, seed=1)
        d, h, k = x1.shape[1], 16, 3
        s1, b1, s2, b2 = 1.5, 0.2, 0.9, 0.4
        net = L.serial(L.Dense(h, W_std=s1, b_std=b1), L.Relu(), L.Dense(k, W_std=s2, b_std=b2))
        _, params = net.init(jax.random.key(3), x1.shape)
        (p1, _, p2) = params
        W1, c1, W2 = (np.asarray(v) for v in (p1["W"], p1["b"], p2["W"]))
        z1 = s1 / np.sqrt(d) * x1 @ W1 + b1 * c1
        z2 = s1 / np.sqrt(d) * x2 @ W1 + b1 * c1
        a1, a2 = np.maximum(z1, 0), np.maximum(z2, 0)
        g1, g2 = (z1 > 0).astype(float), (z2 > 0).astype(float)
        readout = s2**2 / h * a1 @ a2.T + b2**2  # from W2 and b2
        hidden = np.einsum("ja,jb,ij,lj->ilab", W2, W2, g1, g2) * s2**2 / h
        hidden *= (s1**2 / d * x1 @ x2.T + b1**2)[:, :, None, None]
        want = hidden + np.einsum("il,ab->ilab", readout, np.eye(k))
        for impl in IMPLEMENTATIONS:
            kfn = empirical_kernel_fn(net.apply, trace_axes=(), implementation=impl)
            got = jax.jit(kfn, static_argnums=2)(x1, x2, ("ntk", "nngp"), params)
            assert got._fields == ("ntk", "nngp")
            np.testing.assert_allclose(got.ntk, want, atol=1e-10)
            f1, f2 = net.apply(params, x1), net.apply(params, x2)
            np.testing.assert_allclose(got.nngp, np.einsum("ia,jb->ijab", f1, f2), atol=1e-12)
            traced = jax.jit(empirical_ntk_fn(net.apply, implementation=impl))(x1, x2, params)
            np.testing.assert_allclose(traced, np.einsum("ilaa->il", want) / k, atol=1e-10)
        nngp = empirical_nngp_fn(net.apply)(x1, x2, params)
        np.testing.assert_allclose(nngp, np.asarray(f1) @ np.asarray(f2).T / k, atol=1e-12)


def test_implementations_agree_on_a_cnn():
    net = L.serial(
        L.Conv(4, (2, 2), padding="SAME", W_std=1.3, b_std=0.1),
        L.Relu(),
        L.Conv(3, (2, 2), W_std=1.1),
    )
    x1 = jax.random.normal(jax.random.key(1), (2, 3, 3, 2))
    x2 = jax.random.normal(jax.random.key(2), (3, 3, 3, 2))
    _, params = net.init(jax.random.key(0), x1.shape)
    for trace, diag, xb in [((), (0,), None), ((-1, 1), (2,), x2), ((-1,), (), x2)]:
        fns = [jax.jit(empirical_ntk_fn(net.apply, trace, diag, impl)) for impl in IMPLEMENTATIONS]
        a, b = (f(x1, xb, params) for f in fns)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.abs(a).max()))
    assert a.shape == (2, 3, 2, 2, 2, 2)  # (n1, n2, H1, H2, W1, W2) with trace_axes=(-1,)


def _relu_moments(k11, k12, k22):
    """E[relu(u) relu(v)] and E[relu'(u) relu'(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]])."""
    norm = np.sqrt(k11 * k22)
    theta = np.arctan2(np.sqrt(np.maximum(k11 * k22 - k12**2, 0.0)), k12)
    e_relu = norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
    e_step = (np.pi - theta) / (2 * np.pi)
    return e_relu, e_step


@pytest.mark.slow
def test_monte_carlo_matches_arc_cosine_closed_form():
    x = _inputs(4, 3, seed=5)
    d, width, k = 3, 128, 64
    s1, b1, s2, b2 = 1.4, 0.3, 1.2, 0.2
    net = L.serial(L.Dense(width, W_std=s1, b_std=b1), L.Relu(), L.Dense(k, W_std=s2, b_std=b2))
    key, n = jax.random.key(11), 48
    mc = monte_carlo_kernel_fn(net.init, net.apply, key, n, batch_size=16)
    est = mc(x, None, get=("nngp", "ntk"))
    # Per-draw kernels with the same keys, for the standard errors.
    kfn = empirical_kernel_fn(net.apply)

    def draw(kk):
        return kfn(x, None, None, net.init(kk, x.shape)[1])

    per = jax.jit(jax.vmap(draw))(jax.random.split(key, n))
    np.testing.assert_allclose(est.nngp, per.nngp.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.ntk, per.ntk.mean(0), rtol=1e-5, atol=1e-6)
    # Closed forms: first-layer pre-activations are exactly Gaussian with covariance k0, so
    # E[empirical kernel] equals the infinite-width kernel at any width.
    k0 = s1**2 / d * x @ x.T + b1**2
    dg = np.diag(k0)
    e_relu, e_step = _relu_moments(dg[:, None], k0, dg[None, :])
    nngp = s2**2 * e_relu + b2**2
    ntk = nngp + s2**2 * e_step * k0
    for name, want in (("nngp", nngp), ("ntk", ntk)):
        samples = np.asarray(getattr(per, name))
        se = standard_error(samples)
        assert np.all(se < 0.05 * np.abs(want).max())  # the check has power
        z = np.abs(np.asarray(getattr(est, name)) - want) / se
        assert z.max() < 4.5, (name, z.max())


def test_monte_carlo_batching_and_get():
    x1, x2 = _inputs(3), _inputs(2, seed=1)
    net = L.serial(L.Dense(16, b_std=0.1), L.Relu(), L.Dense(2))
    key = jax.random.key(0)
    whole = monte_carlo_kernel_fn(net.init, net.apply, key, 7, batch_size=7)(x1, x2)
    split = monte_carlo_kernel_fn(net.init, net.apply, key, 7, batch_size=3)(x1, x2)
    np.testing.assert_allclose(whole.nngp, split.nngp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole.ntk, split.ntk, rtol=1e-5, atol=1e-6)
    assert whole.ntk.shape == (3, 2)


def test_bad_inputs_have_clear_errors():
    net = L.Dense(2)
    x = _inputs(3)
    _, params = net.init(jax.random.key(0), x.shape)
    with pytest.raises(ValueError, match="implementation must be one of"):
        empirical_ntk_fn(net.apply, implementation="fast")
    with pytest.raises(ValueError, match="overlap"):
        empirical_ntk_fn(net.apply, (-1,), (1,))(x, None, params)
    with pytest.raises(ValueError, match="out of range"):
        empirical_nngp_fn(net.apply, (5,))(x, None, params)
    with pytest.raises(ValueError, match="diagonal_axes but has size 3 on x1 and 2"):
        empirical_ntk_fn(net.apply, (-1,), (0,))(x, x[:2], params)
    with pytest.raises(ValueError, match="params="):
        empirical_kernel_fn(net.apply)(x, None, "ntk")
    with pytest.raises(ValueError, match="get must be"):
        empirical_kernel_fn(net.apply)(x, None, "cov1", params)
    with pytest.raises(ValueError, match="n_samples must be"):
        monte_carlo_kernel_fn(net.init, net.apply, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="batch_size must be"):
        monte_carlo_kernel_fn(net.init, net.apply, jax.random.key(0), 4, batch_size=0)
