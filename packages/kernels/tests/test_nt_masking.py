"""Padding masks (``mask_constant``) through ConvTranspose, ConvLocal and ImageResize:
Neural Tangents 0.6.5 float64 fixtures (``benchmarks/nt_reference_cases.py masking``), the
kernel against the finite network's ``apply`` by Monte Carlo, and NT's masking API
(``MaskedArray``, ``unmask_fn``, ``supports_masking``)."""

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core import layers as L
from widelab_core.testing import load_sibling
from widelab_kernels import kernel_fn
from widelab_kernels.nt import stax

nt_fixture_check = load_sibling(__file__, "nt_fixture_check")
NETS, REFERENCE = nt_fixture_check.load("masking")


def test_masks_through_position_maps_match_neural_tangents_float64():
    nt_fixture_check.assert_matches_reference(NETS, REFERENCE, auto_cases=("local_gap",))


def test_masked_kernels_match_finite_networks_monte_carlo():
    """One wide draw per network: the channel-mean covariance of the pooled outputs of
    ``apply(..., mask_constant=c)`` estimates the NNGP with standard error
    ``sqrt((K_ij^2 + K_ii K_jj) / C)``. A CIRCULAR transposed convolution whose reads wrap
    around checks that the kernel's output mask is the one ``apply`` uses."""
    c, width = -3.0, 4096
    x = np.random.default_rng(5).normal(size=(3, 5, 2))
    x[0, 3:] = c
    x[2, 0] = c
    nets = {
        "transpose_circular": L.serial(
            L.ConvTranspose(width, (3,), (2,), "CIRCULAR", b_std=0.5), L.GlobalAvgPool()
        ),
        "local_same": L.serial(
            L.ConvLocal(width, (3,), None, "SAME", W_std=1.3, b_std=0.2), L.GlobalAvgPool()
        ),
        "resize_linear": L.serial(
            L.Dense(width, b_std=0.7), L.ImageResize((-1, 9, -1), "linear"), L.GlobalAvgPool()
        ),
    }
    xj = jnp.asarray(x, jnp.float32)

    @jax.jit  # one compilation for every network's draw and kernel
    def draws_and_kernels():
        out = {}
        for i, (name, net) in enumerate(nets.items()):
            _, params = net.init(jax.random.key(i), x.shape)
            y = net.apply(params, xj, mask_constant=c)
            k = kernel_fn(net, jit=False)(xj, None, "nngp", mask_constant=c)
            out[name] = (y, k)
        return out

    for name, (y, k) in draws_and_kernels().items():
        y, k = np.asarray(y, np.float64), np.asarray(k, np.float64)
        emp = y @ y.T / width
        se = np.sqrt((k**2 + np.outer(np.diag(k), np.diag(k))) / width)
        z = np.abs(emp - k) / se
        assert z.max() < 5.0, (name, z.max())


def test_kernel_output_masks_are_those_of_apply():
    c = -3.0
    rng = np.random.default_rng(8)
    x1, x2 = rng.normal(size=(2, 5, 4, 2)), rng.normal(size=(2, 5, 4, 2))
    x1[0, 2:] = c
    x1[1, :, 0] = c
    x2[1, 0, 1] = c
    layers = [
        L.ConvTranspose(2, (3, 2), (2, 1), "CIRCULAR"),  # reads wrap around
        L.ConvLocal(2, (2, 2), (2, 1), "SAME"),
        L.ImageResize((-1, 3, 7, -1), "linear"),
    ]

    @jax.jit  # one compilation for every layer's kernel and masked apply
    def masks(a, b):
        out = []
        for layer in layers:
            _, params = layer.init(jax.random.key(0), a.shape)
            k = kernel_fn(layer, jit=False)(a, b, None, mask_constant=c)
            want = [layer.apply_masked(params, x, L.input_mask(x, c), None)[1] for x in (a, b)]
            out.append(((k.mask1, k.mask2), want))
        return out

    for layer, (got, want) in zip(layers, masks(x1, x2)):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w)[..., 0])
        assert 0 < np.sum(got[0]) < got[0].size, layer


def test_apply_fn_returns_masked_arrays_and_unmask_fn_zeroes_padding():
    c = 9.0
    x = np.random.default_rng(2).normal(size=(2, 4, 3))
    x[0, 2:] = c
    init_fn, apply_fn, _ = stax.serial(stax.Dense(5, b_std=0.5), stax.Relu())
    _, params = init_fn(jax.random.key(0), x.shape)
    out = jax.jit(lambda p, a: apply_fn(p, a, mask_constant=c))(params, x)
    assert isinstance(out, stax.MaskedArray)
    want_mask = np.zeros((2, 4, 1), bool)
    want_mask[0, 2:] = True
    np.testing.assert_array_equal(np.asarray(out.mask), want_mask)
    plain = np.asarray(apply_fn(params, x))
    zeroed = np.asarray(stax.unmask_fn(apply_fn)(params, x, mask_constant=c))
    np.testing.assert_allclose(zeroed, np.where(want_mask, 0.0, plain), rtol=1e-6)
    # a MaskedArray input carries its mask on; its values at padding are not read as c
    init2, apply2, _ = stax.serial(stax.Dense(2), stax.GlobalAvgPool())
    _, p2 = init2(jax.random.key(1), out.masked_value.shape)
    pooled = apply2(p2, out)
    assert isinstance(pooled, stax.MaskedArray) and not np.any(pooled.mask)
    direct = np.asarray(apply2(p2, np.asarray(out.masked_value)[1:]))
    np.testing.assert_allclose(np.asarray(pooled.masked_value)[1:], direct, rtol=1e-5)


def test_supports_masking_layers_get_masks_in_apply_and_kernel():
    seen = []

    def halve_layer(remask: bool, mask_fn=None):
        @stax.layer
        @stax.supports_masking(remask_kernel=remask)
        def Halve():
            def apply_fn(params, x, mask=None, **kwargs):
                seen.append(mask)
                return x / 2

            def kernel_fn(k, **kwargs):
                q = lambda a: None if a is None else a / 4
                return k.replace(nngp=q(k.nngp), ntk=q(k.ntk), cov1=q(k.cov1), cov2=q(k.cov2))

            fns = (lambda rng, shape: (shape, ()), apply_fn, kernel_fn)
            return fns if mask_fn is None else (*fns, mask_fn)

        return Halve()

    c, b = 0.0, 0.7
    x = np.ones((2, 3, 1))
    x[0, 1] = c
    for remask in (False, True):
        init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(4, b_std=b), halve_layer(remask))
        k = kernel_fn(x, None, mask_constant=c)
        np.testing.assert_array_equal(np.asarray(k.mask1), x[..., 0] == c)
        padded = float(k.nngp[0, 0, 1, 1])  # NT layout (n1, n2, s, s')
        np.testing.assert_allclose(padded, 0.0 if remask else b**2 / 4, rtol=1e-6)
        np.testing.assert_allclose(float(k.nngp[1, 1, 1, 1]), (1 + b**2) / 4, rtol=1e-6)
        _, params = init_fn(jax.random.key(0), x.shape)
        out = apply_fn(params, x, mask_constant=c)
        np.testing.assert_array_equal(np.asarray(seen[-1])[..., 0], x[..., 0] == c)
        np.testing.assert_array_equal(np.asarray(out.mask)[..., 0], x[..., 0] == c)
    # a mask_fn that changes the mask reaches both the kernel and apply_fn's output
    clear = lambda mask, input_shape: np.zeros(mask.shape, bool)
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(4), halve_layer(True, clear))
    assert not np.any(np.asarray(kernel_fn(x, None, mask_constant=c).mask1))
    _, params = init_fn(jax.random.key(0), x.shape)
    assert not np.any(np.asarray(apply_fn(params, x, mask_constant=c).mask))
