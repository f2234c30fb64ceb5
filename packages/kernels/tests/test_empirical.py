"""Empirical NTK/NNGP: exact cases, implementations agree, trace/diagonal axes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_core.testing import float64
from widelab_kernels import (
    empirical_kernel_fn,
    empirical_nngp,
    empirical_nngp_fn,
    empirical_ntk,
    empirical_ntk_fn,
    kernel_fn,
    ntk_vector_product,
)


def test_linear_model_ntk_is_exact():
    """For f(x) = W_std / sqrt(d) x W + b_std b, Theta = W_std^2 x.x'/d + b_std^2 exactly."""
    net = L.Dense(3, W_std=1.7, b_std=0.4)
    x1 = jax.random.normal(jax.random.key(0), (4, 5))
    x2 = jax.random.normal(jax.random.key(1), (2, 5))
    _, params = net.init(jax.random.key(2), x1.shape)
    got = empirical_ntk(net.apply, params, x1, x2)
    want = kernel_fn(net)(x1, x2, get="ntk")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_jacobian_and_ntvp_agree_and_axes():
    net = L.serial(L.Conv(6, (2,), padding="SAME"), L.Relu(), L.Dense(3))
    x1 = jax.random.normal(jax.random.key(0), (3, 4, 2))
    x2 = jax.random.normal(jax.random.key(1), (2, 4, 2))
    _, params = net.init(jax.random.key(2), x1.shape)
    for kw, shape in (
        (dict(), (3, 2, 4, 4)),
        (dict(trace_axes=(1, 2)), (3, 2)),
        (dict(trace_axes=(), diagonal_axes=(1,)), (3, 2, 4, 3, 3)),
    ):
        a = empirical_ntk(net.apply, params, x1, x2, **kw)
        b = empirical_ntk(net.apply, params, x1, x2, implementation="ntvp", **kw)
        assert a.shape == shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    diag = empirical_ntk(net.apply, params, x1, None, trace_axes=(-1,), diagonal_axes=(0,))
    full = empirical_ntk(net.apply, params, x1, None, trace_axes=(-1,))
    np.testing.assert_allclose(diag, np.einsum("aapq->apq", full), rtol=1e-5)
    nngp = empirical_nngp(net.apply, params, x1, x2, trace_axes=(1, 2))
    f1, f2 = net.apply(params, x1), net.apply(params, x2)
    np.testing.assert_allclose(nngp, np.einsum("apc,bpc->ab", f1, f2) / 12, rtol=1e-5)


def test_ntk_vector_product_matches_matrix():
    net = L.serial(L.Dense(16), L.Erf(), L.Dense(2))
    x1 = jax.random.normal(jax.random.key(0), (3, 4))
    x2 = jax.random.normal(jax.random.key(1), (5, 4))
    _, params = net.init(jax.random.key(2), x1.shape)
    v = jax.random.normal(jax.random.key(3), (5, 2))
    full = empirical_ntk(net.apply, params, x1, x2, trace_axes=())  # (3, 5, 2, 2)
    want = jnp.einsum("abij,bj->ai", full, v)
    np.testing.assert_allclose(ntk_vector_product(net.apply, params, x1, x2, v), want, rtol=1e-4)
    f = empirical_kernel_fn(net.apply)
    out = f(x1, x2, ("nngp", "ntk"), params)
    assert out["nngp"].shape == out["ntk"].shape == (3, 5)


IMPLEMENTATIONS = ("jacobian", "ntvp")


def _inputs(n=4, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_linear_model_ntk_closed_form_all_layouts(parameterization):
    with float64():
        x1, x2 = _inputs(4), _inputs(3, seed=1)
        s, b, k, d = 1.7, 0.3, 2, x1.shape[1]
        net = L.Dense(k, W_std=s, b_std=b, parameterization=parameterization)
        _, params = net.init(jax.random.key(0), x1.shape)
        # NTK parameterization: df/dW = s / sqrt(d) x, df/db = b; standard: x and 1.
        lin = (lambda a, c: s**2 / d * a @ c.T + b**2) if parameterization == "ntk" else None
        lin = lin or (lambda a, c: a @ c.T + 1.0)
        for impl in IMPLEMENTATIONS:
            ntk = empirical_ntk_fn(net.apply, implementation=impl)(x1, x2, params)
            np.testing.assert_allclose(ntk, lin(x1, x2), atol=1e-12)
            full = empirical_ntk_fn(net.apply, trace_axes=(), implementation=impl)(x1, x2, params)
            assert full.shape == (4, 3, k, k)
            np.testing.assert_allclose(
                full, np.einsum("ij,ab->ijab", lin(x1, x2), np.eye(k)), atol=1e-12
            )
            diag = empirical_ntk_fn(net.apply, diagonal_axes=(0,), implementation=impl)(
                x1, None, params
            )
            np.testing.assert_allclose(diag, np.diag(lin(x1, x1)), atol=1e-12)


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
        f1, f2 = net.apply(params, x1), net.apply(params, x2)
        for impl in IMPLEMENTATIONS:
            kfn = empirical_kernel_fn(net.apply, trace_axes=(), implementation=impl)
            got = jax.jit(kfn, static_argnums=2)(x1, x2, ("ntk", "nngp"), params)
            np.testing.assert_allclose(got["ntk"], want, atol=1e-10)
            np.testing.assert_allclose(got["nngp"], np.einsum("ia,jb->ijab", f1, f2), atol=1e-12)
            traced = jax.jit(empirical_ntk_fn(net.apply, implementation=impl))(x1, x2, params)
            np.testing.assert_allclose(traced, np.einsum("ilaa->il", want) / k, atol=1e-10)
        nngp = empirical_nngp_fn(net.apply)(x1, x2, params)
        np.testing.assert_allclose(nngp, np.asarray(f1) @ np.asarray(f2).T / k, atol=1e-12)


def test_implementations_agree_on_a_2d_cnn():
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


def test_bad_inputs_have_clear_errors():
    net = L.Dense(2)
    x = _inputs(3)
    _, params = net.init(jax.random.key(0), x.shape)
    with pytest.raises(ValueError, match="implementation must be"):
        empirical_ntk_fn(net.apply, implementation="fast")
    with pytest.raises(ValueError, match="implementation must be"):
        empirical_ntk(net.apply, params, x, implementation="fast")
    with pytest.raises(ValueError, match="overlap"):
        empirical_ntk_fn(net.apply, (-1,), (1,))(x, None, params)
    with pytest.raises(ValueError, match="out of range"):
        empirical_nngp_fn(net.apply, (5,))(x, None, params)
    for fn in (empirical_ntk_fn, empirical_nngp_fn):
        with pytest.raises(ValueError, match="diagonal_axes but has size 3 on x1 and 2"):
            fn(net.apply, (-1,), (0,))(x, x[:2], params)
    with pytest.raises(ValueError, match="get must name"):
        empirical_kernel_fn(net.apply)(x, None, "cov1", params)
