"""Structural identities of analytic kernels and the kernel_fn API."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import Kernel, KernelError, kernel_fn, register_rule

MLP = L.serial(
    L.Dense(64, W_std=1.5, b_std=0.1), L.Relu(), L.Dense(64, W_std=1.2), L.Erf(), L.Dense(1)
)
CNN = L.serial(
    L.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.1),
    L.Relu(),
    L.Conv(8, (2, 2), padding="CIRCULAR"),
    L.Gelu(),
    L.GlobalAvgPool(),
    L.Dense(1),
)


def _x(key, shape):
    return jax.random.normal(jax.random.key(key), shape)


def test_symmetric_psd_and_block_consistency():
    with jax.enable_x64(True):
        for net, shape in ((MLP, (5, 3)), (CNN, (4, 4, 3, 2))):
            x1, x2 = _x(0, shape).astype(jnp.float64), _x(1, (3, *shape[1:])).astype(jnp.float64)
            x = jnp.concatenate([x1, x2])
            kf = kernel_fn(net)
            full = kf(x, None, get=("nngp", "ntk"))
            block = kf(x1, x2, get=("nngp", "ntk"))
            for name in ("nngp", "ntk"):
                k = np.asarray(getattr(full, name))
                np.testing.assert_allclose(k, k.T, atol=1e-12)
                assert np.linalg.eigvalsh(k).min() > -1e-10 * np.abs(k).max()
                np.testing.assert_allclose(
                    getattr(block, name), k[: 5 if net is MLP else 4, -3:], rtol=1e-10
                )
            # cov1 is the diagonal of the x1 x x1 kernel
            np.testing.assert_allclose(
                kf(x1, x2, get="cov1"), np.diag(kf(x1, None, get="nngp")), rtol=1e-12
            )


def test_cnn_1x1_global_avg_pool_equals_fc_averaged_over_pixel_pairs():
    """A 1x1-conv network is the FC network at each pixel; GlobalAvgPool averages the
    FC kernel over all pixel pairs, Flatten over same-position pairs."""
    fc = L.serial(
        L.Dense(8, W_std=1.3, b_std=0.2), L.Relu(), L.Dense(8, W_std=0.9, b_std=0.1), L.Erf()
    )
    conv = L.serial(
        L.Conv(8, (1, 1), W_std=1.3, b_std=0.2),
        L.Relu(),
        L.Conv(8, (1, 1), W_std=0.9, b_std=0.1),
        L.Erf(),
    )
    with jax.enable_x64(True):
        x1 = _x(0, (2, 3, 2, 4)).astype(jnp.float64)
        x2 = _x(1, (3, 3, 2, 4)).astype(jnp.float64)
        p1, p2 = x1.reshape(-1, 4), x2.reshape(-1, 4)
        k_fc = kernel_fn(fc)(p1, p2, get=("nngp", "ntk"))
        gap = kernel_fn(L.serial(conv, L.GlobalAvgPool()))(x1, x2, get=("nngp", "ntk"))
        flat = kernel_fn(L.serial(conv, L.Flatten()))(x1, x2, get=("nngp", "ntk"))
        for name in ("nngp", "ntk"):
            fck = np.asarray(getattr(k_fc, name)).reshape(2, 6, 3, 6)
            want_gap = fck.mean(axis=(1, 3))
            want_flat = np.einsum("apbp->ab", fck) / 6
            np.testing.assert_allclose(getattr(gap, name), want_gap, rtol=1e-10)
            np.testing.assert_allclose(getattr(flat, name), want_flat, rtol=1e-10)


def test_layout_is_chosen_per_network():
    x = _x(0, (2, 4, 4, 3))
    pool_free = L.serial(L.Conv(4, (3, 3), padding="SAME"), L.Relu(), L.Conv(4, (3, 3)))
    pooled = L.serial(L.Conv(4, (3, 3), padding="SAME"), L.Relu(), L.AvgPool((2, 2)))
    diag = kernel_fn(pool_free)(x, None)
    full = kernel_fn(pooled)(x, None)
    assert isinstance(diag, Kernel) and diag.diagonal_spatial
    assert diag.nngp.shape == (2, 2, 2, 2) and diag.cov1.shape == (2, 2, 2)
    assert not full.diagonal_spatial
    assert full.nngp.shape == (2, 2, 3, 3, 3, 3) and full.cov1.shape == (2, 3, 3, 3, 3)


def test_get_variants_and_x2_none():
    x1, x2 = _x(0, (3, 4)), _x(1, (2, 4))
    kf = kernel_fn(MLP)
    k = kf(x1, x2)
    assert isinstance(k, Kernel) and k.cov2.shape == (2,)
    assert kf(x1, x2, get="ntk").shape == (3, 2)
    both = kf(x1, x2, get=("ntk", "nngp"))
    assert both._fields == ("ntk", "nngp")
    np.testing.assert_allclose(both.ntk, k.ntk, rtol=1e-6)
    assert kf(x1, None, get="nngp").shape == (3, 3)
    assert kf(x1, None).cov2 is None and kf(x1, x2, get="nngp").dtype == jnp.float32
    with pytest.raises(ValueError, match="get must name"):
        kf(x1, x2, get="foo")


def test_jit_vmap_grad_through_kernel_fn():
    x1, x2 = _x(0, (3, 4)), _x(1, (2, 4))

    def loss(w_std):
        net = L.serial(L.Dense(8, W_std=w_std, b_std=0.1), L.Relu(), L.Dense(1, W_std=w_std))
        return jnp.sum(kernel_fn(net)(x1, x2, get="ntk"))

    g = jax.grad(loss)(1.3)
    eps = 1e-2
    fd = (loss(1.3 + eps) - loss(1.3 - eps)) / (2 * eps)
    assert abs(float(g) - float(fd)) < 1e-2 * abs(float(fd))
    kf = kernel_fn(MLP)
    jitted = jax.jit(lambda a, b: kf(a, b, get="nngp"))
    np.testing.assert_allclose(jitted(x1, x2), kf(x1, x2, get="nngp"), rtol=1e-6)
    batched = jax.vmap(lambda a: kf(a, x2, get="nngp"))(x1[:, None])
    np.testing.assert_allclose(batched[:, 0], kf(x1, x2, get="nngp"), rtol=1e-5)


def test_repeat_equals_serial_copies():
    block = L.serial(L.Dense(8, W_std=1.4, b_std=0.1), L.Relu())
    x = _x(0, (3, 8))
    a = kernel_fn(L.repeat(block, 3))(x, None, get=("nngp", "ntk"))
    b = kernel_fn(L.serial(block, block, block))(x, None, get=("nngp", "ntk"))
    np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-6)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-6)


def test_user_registered_rule():
    @dataclasses.dataclass(frozen=True)
    class Scale(L.Layer):
        c: float = 2.0

        def init(self, key, input_shape):
            return input_shape, ()

        def apply_masked(self, params, x, mask, key):
            return self.c * x, mask

    def rule(layer, k, ctx):
        s = layer.c**2
        return k.replace(
            nngp=s * k.nngp,
            ntk=None if k.ntk is None else s * k.ntk,
            cov1=s * k.cov1,
            cov2=None if k.cov2 is None else s * k.cov2,
        )

    x = _x(0, (3, 4))
    net = L.serial(L.Dense(4), Scale(3.0), L.Relu(), L.Dense(1))
    with pytest.raises(KernelError, match="no kernel rule is registered for layer type Scale"):
        kernel_fn(net)(x, None)
    register_rule(Scale, rule)
    got = kernel_fn(net)(x, None, get="nngp")
    want = kernel_fn(L.serial(L.Dense(4, W_std=3.0), L.Relu(), L.Dense(1)))(x, None, get="nngp")
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_tiled_equals_untiled():
    x1, x2 = _x(0, (7, 4)), _x(1, (5, 4))
    plain = kernel_fn(MLP)
    tiled = kernel_fn(MLP, batch_size=3)
    for a, b in ((x1, x2), (x1, None)):
        want = plain(a, b, get=("nngp", "ntk"))
        got = tiled(a, b, get=("nngp", "ntk"))
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-5, atol=1e-7)


def test_masked_sequences_ignore_padding():
    """Padding positions change nothing: a padded sequence has the kernel of the
    truncated one through attention and global average pooling."""
    net = L.serial(
        L.Dense(8), L.GlobalSelfAttention(8, 8, 8, 1), L.Relu(), L.GlobalAvgPool(), L.Dense(1)
    )
    with jax.enable_x64(True):
        x = _x(0, (2, 5, 3)).astype(jnp.float64)
        padded = x.at[:, 3:].set(9.0)
        got = kernel_fn(net)(padded, None, get=("nngp", "ntk"), mask_constant=9.0)
        want = kernel_fn(net)(x[:, :3], None, get=("nngp", "ntk"))
        # Diagonal entries sit at correlation 1, where the arc-cosine angle amplifies
        # summation-order rounding to ~1e-10.
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-8)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-8)
