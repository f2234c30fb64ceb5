"""Kernels of ConvTranspose, ConvLocal, ImageResize and Index: Neural Tangents 0.6.5
float64 fixtures (``benchmarks/nt_reference_cases.py layers``), Monte Carlo agreement of the
finite-width layers, errors, float32 jit/grad."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import KernelError, kernel_fn
from widelab_kernels.nt import stax

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("nt_nets_layers", HERE / "nt_nets_layers.py")
nt_nets_layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nt_nets_layers)
REFERENCE = np.load(HERE / "data" / "nt_reference_layers.npz")


def _spatial_diagonal_nt(a, n_batch=3):
    """NT layout ``(.., s1, s1', s2, s2')`` -> same-position entries ``(.., s1, s2)``."""
    letters = "defghijk"[: (a.ndim - n_batch) // 2]
    lead = "abc"[:n_batch]
    pairs = "".join(c + c for c in letters)
    return np.einsum(f"{lead}{pairs}->{lead}{letters}", a)


def _same_positions(a):
    """1 where an NT-layout all-pairs array pairs a position with itself."""
    mask = np.ones((1,) * 3, bool)
    for i in range(3, a.ndim, 2):
        eye = np.eye(a.shape[i], dtype=bool)
        mask = mask[..., None, None] & eye.reshape((1,) * (mask.ndim) + eye.shape)
    return mask


def test_layers_match_neural_tangents_float64():
    cases = list(nt_nets_layers.cases(stax))
    with jax.enable_x64(True):

        @jax.jit
        def all_kernels(inputs):
            out = {}
            for (case, net, _, _), (x1, x2) in zip(cases, inputs):
                k = net[2](x1, x2, ("nngp", "ntk"))
                out[case] = jnp.stack([k.nngp, k.ntk])
                if case in ("convT_valid_flat", "local_flat", "resize_linear_gap"):
                    # widelab's own layout choice (same-position covariances where enough)
                    auto = kernel_fn(net, jit=False)(x1, x2, ("nngp", "ntk"))
                    out[case + "|auto"] = jnp.stack([auto.nngp, auto.ntk])
            return out

        got = all_kernels([(c[2], c[3]) for c in cases])
    assert len(cases) == len(REFERENCE.files)
    for case, _, _, _ in cases:
        want = REFERENCE[case]
        ours = np.asarray(got[case])
        if case.startswith("local_circular_spatial"):
            # NT returns a locally connected layer's output with same-position entries
            # only; widelab returns all pairs, with zero covariance between positions.
            assert np.all(ours[..., ~_same_positions(ours)[0, 0, 0]] == 0)
            ours = _spatial_diagonal_nt(ours)
        assert ours.shape == want.shape, (case, ours.shape, want.shape)
        scale = np.max(np.abs(want))
        err = np.max(np.abs(ours - want)) / scale
        # NT's arc-cosine kernel loses ~1e-9 (relative) on the diagonal of x1 = x2.
        tol = 3e-9 if case.endswith("x1x1") else 1e-12
        assert err < tol, (case, err)
        if case + "|auto" in got:
            auto_err = np.max(np.abs(np.asarray(got[case + "|auto"]) - want)) / scale
            assert auto_err < tol, (case, "auto layout", auto_err)


def _empirical_cov(y):
    """Channel-mean covariance of ``(n, *S, C)`` outputs in widelab's all-pairs layout."""
    n, sp, c = y.shape[0], y.shape[1:-1], y.shape[-1]
    flat = np.reshape(y, (-1, c))
    cov = np.reshape(flat @ flat.T / c, (n, *sp, n, *sp))
    d = len(sp)
    return np.transpose(cov, (0, d + 1, *range(1, d + 1), *range(d + 2, 2 * d + 2)))


MC_LAYERS = {
    "transpose_valid": L.ConvTranspose(4096, (3, 2), (2, 1), "VALID", W_std=1.3, b_std=0.2),
    "transpose_circular": L.ConvTranspose(4096, (3, 3), (2, 2), "CIRCULAR", b_std=0.1),
    "transpose_1d_gap": L.ConvTranspose(4096, (2,), (3,), "SAME", W_std=0.9),
    "local_same": L.ConvLocal(4096, (3, 2), None, "SAME", W_std=1.2, b_std=0.3),
    "local_strided": L.ConvLocal(4096, (2, 2), (2, 1), "CIRCULAR", b_std=0.1),
}


def test_finite_width_matches_kernel_monte_carlo():
    """Output channels are i.i.d. Gaussian given the input: the channel-mean covariance
    of one draw estimates the NNGP with standard error sqrt((K_ij^2 + K_ii K_jj) / C)."""
    rng = np.random.default_rng(3)
    x2d = rng.normal(size=(2, 4, 3, 2))
    x1d = rng.normal(size=(2, 5, 2))
    key = jax.random.key(11)
    inputs = {name: x1d if "1d" in name else x2d for name in MC_LAYERS}

    @jax.jit  # one compilation for every layer's draw
    def draws(xs):
        return {
            name: layer.apply(layer.init(key, xs[name].shape)[1], xs[name])
            for name, layer in MC_LAYERS.items()
        }

    with jax.enable_x64(True):

        @jax.jit  # and one for every kernel
        def kernels(xs):
            return {
                name: kernel_fn(layer, jit=False)(xs[name], None, "nngp", diagonal_spatial=False)
                for name, layer in MC_LAYERS.items()
            }

        all_k = kernels(inputs)
    all_y = draws({name: jnp.asarray(x, jnp.float32) for name, x in inputs.items()})
    for name in MC_LAYERS:
        x = inputs[name]
        y = np.asarray(all_y[name], np.float64)
        k = np.asarray(all_k[name])
        assert k.dtype == np.float64
        assert k.shape == _empirical_cov(y).shape
        emp = _empirical_cov(y)
        n, sp = x.shape[0], k.shape[2 : 2 + (k.ndim - 2) // 2]
        d = len(sp)
        by_example = np.transpose(k, (0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d)))
        var = np.reshape(np.diagonal(np.reshape(by_example, (n * np.prod(sp),) * 2)), (n, *sp))
        vi = np.reshape(var, (n, 1, *sp, *(1,) * d))
        vj = np.reshape(var, (1, n, *(1,) * d, *sp))
        se = np.sqrt((k**2 + vi * vj) / y.shape[-1])
        # positions no tap reaches (stride > filter) have exactly zero variance
        zero = se == 0
        assert np.all(emp[zero] == 0) and np.all(k[zero] == 0), name
        z = np.abs(emp - k)[~zero] / se[~zero]
        assert z.max() < 5.0, (name, z.max())
        if name.startswith("local"):
            # unshared weights: positions are uncorrelated, in the kernel exactly
            off = ~np.reshape(np.eye(np.prod(sp), dtype=bool), (1, 1, *sp, *sp))
            assert np.all(k[np.broadcast_to(off, k.shape)] == 0)


def test_errors_name_the_layer_and_the_fix():
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 2))
    cases = [
        (L.ImageResize((-1, 5, -1, 6), "linear"), {}, "channel axis"),
        (L.ImageResize((3, 5, -1, -1), "linear"), {}, "batch axis"),
        (L.ImageResize((-1, 5, -1, -1), "cubic"), {"diagonal_spatial": True}, "all pairs"),
        (L.Index((0, slice(None))), {}, "batch axis"),
        (L.Index((Ellipsis, slice(0, 1))), {}, "channel axis"),
        (L.ConvTranspose(4, (2,)), {}, "spatial axes"),
    ]
    for net, kwargs, words in cases:
        with pytest.raises((KernelError, ValueError), match=words):
            kernel_fn(net)(x, None, "nngp", **kwargs)
    for bad, words in [
        (lambda: L.ConvTranspose(0, (2,)), "out_chan"),
        (lambda: L.ConvLocal(3, (2,), padding="FULL"), "padding"),
        (lambda: L.ImageResize((-1, 0, -1), "linear"), "shape"),
        (lambda: L.ImageResize((-1, 3, -1), "spline"), "method"),
        (lambda: L.Index((1.5,)), "idx"),
        (lambda: L.Index((Ellipsis, Ellipsis)), "Ellipsis"),
    ]:
        with pytest.raises(ValueError, match=words):
            bad()
    with pytest.raises(L.ShapeError, match="out of range"):
        L.Index((slice(None), 9)).init(jax.random.key(0), x.shape)


def test_index_and_resize_keep_masks_and_shapes():
    x = np.ones((2, 4, 3, 2))
    x[0, 0] = 0.0  # first row of example 0 is padding
    idx = L.Index((slice(None), slice(0, 2), 1))
    y_mask = idx.apply_masked((), x, L.input_mask(x, 0.0), None)[1]
    assert y_mask.shape == (2, 2, 1) and bool(y_mask[0, 0, 0]) and not bool(y_mask[0, 1, 0])
    net = L.serial(L.Conv(4, (1, 1)), idx, L.GlobalAvgPool(), L.Dense(1))
    k = kernel_fn(net)(x, None, "nngp", mask_constant=0.0)
    assert k.shape == (2, 2) and np.all(np.isfinite(k))
    resize = L.ImageResize((-1, 8, 6, -1), "linear")
    _, m = resize.apply_masked((), x, L.input_mask(x, 0.0), None)
    assert m.shape == (2, 8, 6, 1) and bool(m[0, 0, 0, 0]) and not bool(m[1, 0, 0, 0])


def test_float32_jit_grad():
    net = L.serial(
        L.ConvTranspose(3, (2, 2), (2, 1), "SAME", b_std=0.1),
        L.Relu(),
        L.ConvLocal(3, (2, 2), padding="CIRCULAR"),
        L.ImageResize((-1, 3, 5, -1), "linear"),
        L.Index((slice(None), slice(0, 2))),
        L.GlobalAvgPool(),
    )
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 4, 2)), jnp.float32)
    kfn = kernel_fn(net, jit=False)
    value_and_grad = jax.jit(jax.value_and_grad(lambda z: jnp.sum(kfn(z, None, "ntk"))))
    value, g = value_and_grad(x)
    assert g.dtype == jnp.float32 and np.all(np.isfinite(g))
    eps = 1e-2
    dx = jnp.zeros_like(x).at[0, 1, 2, 0].set(eps)
    fd = (value_and_grad(x + dx)[0] - value_and_grad(x - dx)[0]) / (2 * eps)
    np.testing.assert_allclose(g[0, 1, 2, 0], fd, rtol=2e-2, atol=1e-3)
    _, params = net.init(jax.random.key(0), x.shape)
    assert net.apply(params, x).shape == (2, 3)
