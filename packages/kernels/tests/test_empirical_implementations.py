"""The three empirical-NTK implementations agree, with and without ``vmap_axes``.

Jacobian contraction is the definition (``J1 J2^T``); NTK-vector products and
structured derivatives (Novak et al. 2022) must give the same matrix to round-off in
float64 for every choice of traced and diagonal output axes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels.empirical import empirical_ntk, empirical_ntk_fn
from widelab_kernels.empirical_structured import find_linear_weights


def _net():
    return L.serial(
        L.Conv(3, (3, 3), padding="SAME", b_std=0.1),
        L.Relu(),
        L.Conv(4, (2, 2), strides=(2, 2), b_std=0.1),
        L.Erf(),
        L.Flatten(),
        L.Dense(2, b_std=0.1),
    )


@pytest.mark.slow
@pytest.mark.parametrize("trace_axes,diagonal_axes", [((-1,), ()), ((), (1,))])
def test_implementations_agree_in_float64(trace_axes, diagonal_axes):
    with jax.enable_x64(True):
        net = _net()
        x1 = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
        x2 = jax.random.normal(jax.random.key(2), (1, 4, 4, 2))
        _, p = net.init(jax.random.key(0), x1.shape)
        kw = dict(trace_axes=trace_axes, diagonal_axes=diagonal_axes)
        impls = (("ntvp", 0), ("structured", None), ("structured", 0))

        @jax.jit  # one compilation instead of op-by-op dispatch of every implementation
        def kernels(p, x1, x2):
            ref = empirical_ntk(net.apply, p, x1, x2, **kw)
            got = [
                empirical_ntk(net.apply, p, x1, x2, implementation=i, vmap_axes=v, **kw)
                for i, v in impls
            ]
            same = empirical_ntk(
                net.apply, p, x1, None, implementation="structured", vmap_axes=0, **kw
            )
            return ref, got, same, empirical_ntk(net.apply, p, x1, None, **kw)

        ref, got, same, same_ref = kernels(p, x1, x2)
        scale = float(jnp.max(jnp.abs(ref)))
        for (impl, _), k in zip(impls, got):
            np.testing.assert_allclose(k, ref, rtol=0, atol=1e-12 * scale, err_msg=impl)
        np.testing.assert_allclose(same, same_ref, rtol=0, atol=1e-12 * scale)


def test_structured_derivatives_use_the_weight_structure():
    """Both convolution kernels and the dense weight are recognised (only biases fall
    back to Jacobian contraction); breaking the weight's single use disables it."""
    net = _net()
    x = jnp.ones((1, 4, 4, 2))
    _, p = net.init(jax.random.key(0), x.shape)
    leaves, treedef = jax.tree_util.tree_flatten(p)
    fn = lambda *a: net.apply(jax.tree_util.tree_unflatten(treedef, list(a[:-1])), a[-1])
    jaxpr = jax.make_jaxpr(fn)(*leaves, x).jaxpr
    found = find_linear_weights(jaxpr, len(leaves))
    assert sorted(leaves[i].ndim for i in found) == [2, 4, 4]
    twice = lambda w, x: (x @ w) @ w.T
    jp = jax.make_jaxpr(twice)(jnp.ones((3, 3)), jnp.ones((2, 3))).jaxpr
    assert find_linear_weights(jp, 1) == {}


def test_auto_picks_an_implementation_with_the_same_result():
    net = L.serial(L.Dense(32), L.Relu(), L.Dense(3))
    x = jax.random.normal(jax.random.key(3), (4, 5))
    _, p = net.init(jax.random.key(0), x.shape)
    auto = empirical_ntk_fn(net.apply, implementation="auto", vmap_axes=0)(x, None, p)
    ref = empirical_ntk(net.apply, p, x)
    np.testing.assert_allclose(auto, ref, rtol=1e-5, atol=1e-6)


def test_grad_through_structured_ntk_matches_jacobian():
    with jax.enable_x64(True):
        net = L.serial(L.Dense(8), L.Tanh(), L.Dense(1))
        x = jax.random.normal(jax.random.key(4), (3, 2))
        _, p = net.init(jax.random.key(0), x.shape)
        loss = lambda xx, impl: jnp.sum(
            empirical_ntk(net.apply, p, xx, implementation=impl, vmap_axes=0) ** 2
        )
        g1 = jax.grad(loss)(x, "jacobian")
        g2 = jax.grad(loss)(x, "structured")
        np.testing.assert_allclose(g2, g1, rtol=1e-10)


def test_bad_arguments():
    f = lambda p, x: x * p
    with pytest.raises(ValueError, match="implementation must be one of"):
        empirical_ntk_fn(f, implementation="fast")
    with pytest.raises(ValueError, match="vmap_axes"):
        empirical_ntk_fn(f, vmap_axes="batch")
