"""Empirical NTK/NNGP: exact cases, implementations agree, trace/diagonal axes."""

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core import layers as L
from widelab_kernels import (
    empirical_kernel_fn,
    empirical_nngp,
    empirical_ntk,
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
