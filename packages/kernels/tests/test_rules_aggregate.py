"""Kernels of graph networks (``Aggregate``): Neural Tangents 0.6.5 float64 fixtures
(``benchmarks/nt_reference_cases.py aggregate``), Monte Carlo agreement of the finite
network at large width, finite-width apply against the definition, float32 jit/grad,
errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_core.testing import load_sibling
from widelab_kernels import KernelError, kernel_fn
from widelab_kernels.nt import stax

nt_fixture_check = load_sibling(__file__, "nt_fixture_check")
NETS, REFERENCE = nt_fixture_check.load("aggregate")


def test_aggregate_matches_neural_tangents_float64():
    nt_fixture_check.assert_matches_reference(NETS, REFERENCE, auto_cases=("sparse_relu_sum",))


def _dense_from_edges(edges, sizes):
    """The dense adjacency ``(n, *sizes, *sizes)`` of edge lists ``(n, E, K, 2)``."""
    n, v = edges.shape[0], int(np.prod(sizes))
    a = np.zeros((n, v, v))
    for i in range(n):
        for e in edges[i]:
            if np.all(e >= 0):
                a[
                    i, np.ravel_multi_index(e[:, 0], sizes), np.ravel_multi_index(e[:, 1], sizes)
                ] += 1
    return a.reshape((n, *sizes, *sizes))


def test_apply_is_the_sum_over_predecessors_in_both_formats():
    data = NETS.inputs()
    x = data["image"][0].astype(np.float32)  # (3, 3, 4, 2)
    edges = data["sparse_2d"][0]
    dense = _dense_from_edges(edges, (3, 4))
    want = np.einsum("nijc,nijkl->nklc", x, dense)
    init_fn, apply_fn, _ = stax.Aggregate(aggregate_axis=(1, 2), implementation="SPARSE")
    shape, params = init_fn(jax.random.key(0), x.shape)
    assert shape == x.shape
    np.testing.assert_allclose(apply_fn(params, x, pattern=edges), want, atol=1e-5)
    np.testing.assert_allclose(L.Aggregate().apply((), x, pattern=dense), want, atol=1e-5)
    # One aggregated axis of two: the other axis is carried along (NT: x @ A per row).
    a_w = data["dense_w"][0]
    np.testing.assert_allclose(
        L.Aggregate(2).apply((), x, pattern=a_w), np.einsum("nhwc,nwv->nhvc", x, a_w), atol=1e-5
    )
    # Without a pattern the layer is the identity, as in NT; serial passes it on.
    np.testing.assert_array_equal(apply_fn(params, x), x)
    net = L.serial(L.Aggregate(), L.Relu(), L.Aggregate())
    np.testing.assert_allclose(
        net.apply(((), (), ()), x, pattern=dense),
        np.einsum("nijc,nijkl->nklc", np.maximum(want, 0), dense),
        rtol=1e-5,
        atol=1e-4,
    )
    # The kernel from edge lists equals the kernel from their dense adjacency.
    sp = L.serial(L.Conv(4, (2, 2), padding="SAME"), L.Relu(), L.Aggregate(implementation="SPARSE"))
    de = L.serial(L.Conv(4, (2, 2), padding="SAME"), L.Relu(), L.Aggregate())
    (x1, x2), e2 = data["image"], data["sparse_2d"][1]
    with jax.enable_x64(True):
        ks = kernel_fn(sp)(x1, x2, ("nngp", "ntk"), pattern=(edges, e2))
        kd = kernel_fn(de)(x1, x2, ("nngp", "ntk"), pattern=(dense, _dense_from_edges(e2, (3, 4))))
        # x2=None: the second graph defaults to the first.
        k1 = kernel_fn(de)(x1, None, "nngp", pattern=(dense, None))
        k11 = kernel_fn(de)(x1, None, "nngp", pattern=(dense, dense))
    np.testing.assert_allclose(ks.nngp, kd.nngp, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ks.ntk, kd.ntk, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k1, k11, rtol=1e-12, atol=1e-12)


WIDTH, OUT, DRAWS = 256, 256, 32


def test_wide_network_matches_kernel_monte_carlo():
    """Dense-Aggregate-Relu-Aggregate-GlobalSumPool-Dense: the first layer's outputs are
    exactly Gaussian with the NNGP covariance at any width, so per draw the channel
    mean of ``f f^T`` (NNGP) and ``J J^T`` of one output (NTK) are unbiased; their mean
    over draws must agree with the analytic kernels within 4.5 standard errors."""
    data = NETS.inputs()
    x = np.concatenate(data["graph"])  # (5, 5, 2): 5 graphs of 5 vertices
    a = np.concatenate(data["dense"])
    net = L.serial(
        L.Dense(WIDTH, W_std=1.5, b_std=0.1),
        L.Aggregate(),
        L.Relu(),
        L.Aggregate(),
        L.GlobalSumPool(),
        L.Dense(OUT, W_std=1.2),
    )
    with jax.enable_x64(True):
        k = kernel_fn(net)(x, None, ("nngp", "ntk"), pattern=(a, None))

        nt_fixture_check.assert_wide_draws_match(
            net, x, k, key=5, draws=DRAWS, out=OUT, apply_kwargs={"pattern": a}
        )


def test_float32_jit_and_grad():
    data = NETS.inputs()
    x1, x2 = (np.asarray(v, np.float32) for v in data["graph"])
    a1, a2 = (np.asarray(v, np.float32) for v in data["dense"])
    init_fn, apply_fn, kernel = stax.serial(
        stax.Dense(8, b_std=0.1), stax.Aggregate(), stax.Erf(), stax.GlobalAvgPool()
    )

    @jax.jit
    def loss(x1, a1):
        k = kernel(x1, x2, "ntk", pattern=(a1, a2))
        return jnp.sum(k**2)

    value, grads = jax.value_and_grad(loss, argnums=(0, 1))(x1, a1)
    assert value.dtype == jnp.float32 and np.isfinite(float(value))
    assert all(np.all(np.isfinite(g)) and g.dtype == jnp.float32 for g in grads)
    # The gradient in one edge weight agrees with a central difference.
    step = np.zeros_like(a1)
    step[0, 1, 2] = 1e-2
    fd = (loss(x1, a1 + step) - loss(x1, a1 - step)) / 2e-2
    np.testing.assert_allclose(grads[1][0, 1, 2], fd, rtol=2e-2)
    _, params = init_fn(jax.random.key(0), x1.shape)
    g = jax.jit(jax.grad(lambda p, a: jnp.sum(apply_fn(p, x1, pattern=a) ** 2)))(params, a1)
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(g))


def test_aggregate_errors():
    x = np.ones((2, 5, 2))
    a = np.ones((2, 5, 5))
    net = L.serial(L.Dense(4), L.Aggregate(), L.GlobalSumPool())
    with pytest.raises(KernelError, match="need"):
        kernel_fn(net)(x, None, "nngp", pattern=(np.ones((2, 4, 4)), None))
    with pytest.raises(ValueError, match="one graph given"):
        kernel_fn(net)(x, x, "nngp", pattern=(a, None))
    with pytest.raises(ValueError, match="pair"):
        kernel_fn(net)(x, None, "nngp", pattern=a)
    with pytest.raises(KernelError, match="all pairs"):
        kernel_fn(L.Aggregate())(x, None, "nngp", diagonal_spatial=True, pattern=(a, None))
    with pytest.raises(KernelError, match="spatial axes"):
        kernel_fn(L.Aggregate(aggregate_axis=-1))(x, None, "nngp")
    with pytest.raises(ValueError, match="implementation"):
        L.Aggregate(implementation="CSR")
    with pytest.raises(NotImplementedError, match="channel_axis"):
        stax.Aggregate(channel_axis=1)
    sparse = L.Aggregate(implementation="SPARSE")
    with pytest.raises(ValueError, match="integer"):
        sparse.apply((), x, pattern=np.zeros((2, 3, 2)))
    with pytest.raises(L.ShapeError, match="n_edges"):
        sparse.apply((), x, pattern=np.zeros((2, 3, 3), np.int32))
    with pytest.raises(L.LayerError, match="mask"):
        L.Aggregate().apply((), x, pattern=a, mask_constant=1.0)
