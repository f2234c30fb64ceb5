"""``linearize``/``taylor_expand``, ``nt.batch`` and ``nt.monte_carlo_kernel_fn``."""

import jax
import jax.numpy as jnp
import numpy as np
import widelab_kernels.nt as nt
from widelab_kernels.nt import stax


def test_taylor_expansions_of_a_polynomial_are_exact():
    """f(p) = p^3 x: degree 3 reproduces f exactly, degree 1 is the tangent line."""
    f = lambda p, x: p**3 * x
    x = jnp.array([1.0, -2.0])
    p0, p1 = 0.5, 1.25
    np.testing.assert_allclose(nt.taylor_expand(f, p0, 3)(p1, x), f(p1, x), rtol=1e-6)
    lin = p0**3 * x + 3 * p0**2 * (p1 - p0) * x
    np.testing.assert_allclose(nt.linearize(f, p0)(p1, x), lin, rtol=1e-6)
    np.testing.assert_allclose(nt.taylor_expand(f, p0, 1)(p1, x), lin, rtol=1e-6)
    quad = lin + 3 * p0 * (p1 - p0) ** 2 * x
    np.testing.assert_allclose(nt.taylor_expand(f, p0, 2)(p1, x), quad, rtol=1e-6)


def test_linearized_network_under_jit_vmap_grad():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(2))
    x = jax.random.normal(jax.random.key(0), (5, 3))
    _, p0 = init_fn(jax.random.key(1), x.shape)
    f_lin = nt.linearize(apply_fn, p0)
    np.testing.assert_allclose(jax.jit(f_lin)(p0, x), apply_fn(p0, x), rtol=1e-6)
    # gradient of the linear model w.r.t. params is the Jacobian at p0 everywhere
    p1 = jax.tree_util.tree_map(lambda a: a + 0.1, p0)
    loss = lambda f: lambda p: jnp.sum(f(p, x))
    g_lin = jax.grad(loss(f_lin))(p1)
    g0 = jax.grad(loss(apply_fn))(p0)
    for a, b in zip(jax.tree_util.tree_leaves(g_lin), jax.tree_util.tree_leaves(g0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    per_example = jax.vmap(lambda xi: f_lin(p1, xi[None])[0])(x)
    np.testing.assert_allclose(per_example, f_lin(p1, x), rtol=1e-5, atol=1e-6)


def test_batched_kernel_equals_whole():
    _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
    x1 = jax.random.normal(jax.random.key(2), (5, 3))
    x2 = jax.random.normal(jax.random.key(3), (3, 3))
    batched = nt.batch(kernel_fn, batch_size=2)
    whole = kernel_fn(x1, x2, ("nngp", "ntk"))
    tiled = batched(x1, x2, ("nngp", "ntk"))
    np.testing.assert_allclose(tiled.ntk, whole.ntk, rtol=1e-6)
    np.testing.assert_allclose(batched(x1, None, "nngp"), kernel_fn(x1, None, "nngp"), rtol=1e-6)
    assert nt.batch(kernel_fn, batch_size=0) is kernel_fn


def test_monte_carlo_agrees_with_analytic_within_standard_errors():
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(256, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dense(1, W_std=1.5)
    )
    x = jax.random.normal(jax.random.key(4), (3, 4))
    counts = (8, 32)
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(5), counts)
    estimates = list(mc(x, None, "nngp"))
    assert len(estimates) == 2
    exact = kernel_fn(x, None, "nngp")
    # per-draw spread from the widelab estimator's own samples gives the standard error
    from widelab_kernels import monte_carlo_kernel_fn

    draws = monte_carlo_kernel_fn((init_fn, apply_fn), jax.random.key(5), 32, return_samples=True)(
        x, None, get=("nngp",)
    )["nngp_samples"]
    se = jnp.std(draws, axis=0) / np.sqrt(32)
    np.testing.assert_allclose(estimates[-1], jnp.mean(draws, axis=0), rtol=1e-6)
    assert bool(jnp.all(jnp.abs(estimates[-1] - exact) < 5 * se + 1e-6))
    np.testing.assert_allclose(estimates[0], jnp.mean(draws[:8], axis=0), rtol=1e-6)
