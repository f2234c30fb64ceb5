"""A second same-shaped call of ``kernel_fn(net)`` compiles nothing (whole and tiled)."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring
from widelab_core import layers as L
from widelab_kernels import kernel_fn

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compilations():
    seen = []

    def listener(name, secs, **kwargs):
        if name == COMPILE_EVENT:
            seen.append(name)

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        monitoring.unregister_event_duration_listener(listener)


def _net():
    return L.serial(L.Dense(16, W_std=1.3, b_std=0.1), L.Relu(), L.Dense(1))


@pytest.mark.parametrize("batch_size", [None, 3])
def test_second_call_compiles_nothing(batch_size):
    rng = np.random.default_rng(0)
    x1 = jnp.asarray(rng.normal(size=(7, 5)), jnp.float32)
    x2 = jnp.asarray(rng.normal(size=(5, 5)), jnp.float32)
    first = kernel_fn(_net(), batch_size=batch_size)(x1, None, get="ntk")
    kernel_fn(_net(), batch_size=batch_size)(x1, x2, get="ntk")
    y1 = jnp.asarray(rng.normal(size=x1.shape), jnp.float32)
    y2 = jnp.asarray(rng.normal(size=x2.shape), jnp.float32)
    with count_compilations() as seen:
        # A new but equal network value, new input values of the same shapes.
        again = kernel_fn(_net(), batch_size=batch_size)(y1, None, get="ntk")
        kernel_fn(_net(), batch_size=batch_size)(x1, y2, get="ntk")
    assert seen == [], f"{len(seen)} compilation(s) on a second same-shaped call"
    assert again.shape == first.shape == (7, 7)
    # The counter sees compilations: a new shape compiles.
    with count_compilations() as seen:
        kernel_fn(_net(), batch_size=batch_size)(x1[:6], None, get="ntk")
    assert seen


def test_first_call_compiles_one_program_with_the_finiteness_check():
    """The output finiteness check is part of the kernel's own compiled program."""
    x = jnp.asarray(np.random.default_rng(2).normal(size=(6, 3)), jnp.float32)
    f = kernel_fn(L.serial(L.Dense(8, W_std=1.1), L.Erf(), L.Dense(1)))
    f(x[:2], None, get="nngp")  # warm the layer-shape checks and PRNG helpers
    with count_compilations() as seen:
        k = f(x, None, get=("nngp", "ntk"))
    assert len(seen) == 1, f"{len(seen)} compilations for one new shape"
    assert np.all(np.isfinite(np.asarray(k.ntk)))
    with pytest.raises(ValueError, match="computed nngp holds NaN or inf"):
        kernel_fn(L.serial(L.Dense(8, W_std=1e18), L.Relu(), L.Dense(8, W_std=1e18)))(
            x * 1e15, None, get="nngp"
        )


def test_tiled_mirror_matches_whole_kernel_with_spatial_axes():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3, 2)), jnp.float32)
    net = L.serial(L.Conv(4, (2,), padding="SAME"), L.Relu())  # output keeps (S, S) axes
    net = L.serial(net, L.AvgPool((1,)))  # needs all-pairs spatial covariances
    whole = kernel_fn(net)(x, None, get="nngp")
    tiled = kernel_fn(net, batch_size=2)(x, None, get="nngp")
    assert whole.shape == (5, 5, 3, 3)
    np.testing.assert_allclose(tiled, whole, rtol=1e-5, atol=1e-6)


def test_unhashable_network_values_still_work():
    def total(w):
        net = L.serial(L.Dense(4, W_std=w), L.Relu(), L.Dense(1))
        return jnp.sum(kernel_fn(net)(jnp.ones((2, 3)), None, get="nngp"))

    assert np.isfinite(jax.grad(total)(1.2))
