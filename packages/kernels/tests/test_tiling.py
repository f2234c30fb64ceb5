"""In-program tiling of large kernels, the float32 angle, and exact self-pairs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import analytic, kernel_fn
from widelab_kernels.rules import elementwise

NETS = {
    "mlp": (L.serial(L.Dense(16, W_std=1.5, b_std=0.1), L.Relu(), L.Dense(1)), (23, 5)),
    "pool_free_cnn": (
        L.serial(L.Conv(4, (3, 3), padding="SAME", b_std=0.1), L.Relu(), L.Conv(2, (2, 2))),
        (19, 5, 5, 2),
    ),
    "pooled_cnn_spatial_output": (
        L.serial(L.Conv(4, (3, 3), padding="SAME"), L.Erf(), L.AvgPool((2, 2)), L.Conv(2, (2, 2))),
        (19, 6, 6, 2),
    ),
    "attention_masked": (
        L.serial(
            L.Dense(8),
            L.GlobalSelfAttention(4, 4, 4, 2, linear_scaling=True),
            L.Relu(),
            L.GlobalAvgPool(),
            L.Dense(1),
        ),
        (17, 4, 3),
    ),
}


@pytest.mark.parametrize("name", list(NETS))
def test_in_program_tiles_equal_the_whole_kernel(name, monkeypatch):
    """Tiles of 3 rows (padded at the edge; upper triangle mirrored when x2 is None)
    reproduce the kernel computed in one piece, for every layout."""
    net, shape = NETS[name]
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x1 = jnp.asarray(rng.normal(size=shape))
        x2 = jnp.asarray(rng.normal(size=(8, *shape[1:])))
        mask = None
        if name == "attention_masked":
            x1 = x1.at[::3, -1].set(9.0)
            mask = 9.0
        kf = kernel_fn(net)
        spatial = int(np.prod(shape[1:-1]))
        per_pair = spatial**2 if kf.full_spatial else spatial
        monkeypatch.setattr(analytic, "TILE_MIN_ENTRIES", 10**12)
        gets = [("nngp", "ntk")]
        calls = [(b, g) for b in (None, x2) for g in gets]
        want = [kf(x1, b, get=g, mask_constant=mask) for b, g in calls]
        want_whole = [kf(x1, b, mask_constant=mask) for b in (None, x2)]
        monkeypatch.setattr(analytic, "TILE_MIN_ENTRIES", 1)
        monkeypatch.setattr(analytic, "TILE_ENTRIES", 9 * per_pair)
        assert analytic.tile_rows(shape[0], shape[0], per_pair) == 3
        # A fresh kernel function: the cached one holds the untiled compiled programs.
        monkeypatch.setattr(analytic, "_KERNEL_FNS", {})
        tiled = kernel_fn(net)
        assert tiled is not kf
        got = [tiled(x1, b, get=g, mask_constant=mask) for b, g in calls]
        got_whole = [tiled(x1, b, mask_constant=mask) for b in (None, x2)]
    for g, w in zip(got + got_whole, want + want_whole):
        assert type(g) is type(w)
        assert jax.tree.structure(g) == jax.tree.structure(w)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(w)):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    k = np.asarray(got[0].ntk)  # x2=None, get=(nngp, ntk)
    axes = (1, 0, *range(2, k.ndim))
    if k.ndim == 6:  # all position pairs: swap the two position groups as well
        axes = (1, 0, 4, 5, 2, 3)
    np.testing.assert_allclose(k, np.transpose(k, axes), rtol=1e-12, atol=1e-14)


def test_tile_rows_policy():
    assert analytic.tile_rows(100, 100, 1) is None  # small: one piece
    b = analytic.tile_rows(4000, 4000, 1)
    assert b is not None and b * b <= analytic.TILE_ENTRIES
    assert analytic.tile_rows(200, 200, 4096) * analytic.tile_rows(200, 200, 4096) * 4096 <= (
        analytic.TILE_ENTRIES
    )


def test_single_precision_arccos_against_float64():
    rho64 = np.concatenate([np.linspace(-1, 1, 200001), 1 - np.logspace(-7, -1, 50)])
    rho = jnp.asarray(rho64, jnp.float32)
    got = np.asarray(elementwise._arccos_single(rho), np.float64)
    want = np.arccos(np.asarray(rho, np.float64))
    assert np.max(np.abs(got - want)) < 5e-7
    assert got[np.argmax(rho64)] == 0.0 and abs(got[0] - np.pi) < 3e-7


def test_float32_relu_kernels_match_float64_including_the_diagonal():
    """The float32 path (polynomial arccos, exact self-pairs) agrees with float64 to
    float32 accuracy; without the exact self-pairs the NTK diagonal is off by ~1e-4."""
    net = L.serial(
        L.Dense(64, W_std=1.5, b_std=0.05), L.Relu(), L.Dense(64, W_std=1.5), L.Relu(), L.Dense(1)
    )
    x = np.random.default_rng(1).normal(size=(40, 300))
    with jax.enable_x64(True):
        want = kernel_fn(net)(jnp.asarray(x), None, get=("nngp", "ntk"))
    got = kernel_fn(net)(jnp.asarray(x, jnp.float32), None, get=("nngp", "ntk"))
    for a, b in zip(got, want):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=3e-6, atol=1e-7)
        np.testing.assert_allclose(np.diag(a), np.diag(b), rtol=1e-6)


def test_grad_through_in_program_tiles(monkeypatch):
    """Gradients with respect to a hyperparameter go through the tiled evaluation."""
    x64 = np.random.default_rng(2).normal(size=(10, 3))

    def total(w_std):
        x = jnp.asarray(x64)
        net = L.serial(L.Dense(8, W_std=w_std, b_std=0.1), L.Relu(), L.Dense(1, W_std=w_std))
        return jnp.sum(kernel_fn(net)(x, None, get="ntk"))

    with jax.enable_x64(True):
        monkeypatch.setattr(analytic, "TILE_MIN_ENTRIES", 10**12)
        want = jax.grad(total)(1.3)
        monkeypatch.setattr(analytic, "TILE_MIN_ENTRIES", 1)
        monkeypatch.setattr(analytic, "TILE_ENTRIES", 9)
        assert analytic.tile_rows(10, 10, 1) == 3
        got = jax.grad(total)(1.3)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert abs(float(want)) > 0
