"""kernels x core.devices: tiled analytic and Monte Carlo kernels over the 8 fake CPU
devices equal the untiled ones."""

import jax
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import kernel_fn, monte_carlo_kernel_fn


@pytest.mark.integration
def test_tiled_kernels_over_devices_match_untiled():
    net = L.serial(L.Conv(8, (2, 2), padding="SAME"), L.Relu(), L.GlobalAvgPool(), L.Dense(1))
    x1 = jax.random.normal(jax.random.key(0), (9, 3, 3, 2))
    x2 = jax.random.normal(jax.random.key(1), (5, 3, 3, 2))
    for b in (x2, None):
        want = kernel_fn(net)(x1, b, get=("nngp", "ntk"))
        got = kernel_fn(net, batch_size=4)(x1, b, get=("nngp", "ntk"))
        # float32: at correlation 1 (the x1 x x1 diagonal) the arc-cosine angle turns
        # summation-order rounding into ~1e-5 relative differences.
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-4, atol=1e-6)
    mc = monte_carlo_kernel_fn(net, jax.random.key(2), 2)
    mc_tiled = monte_carlo_kernel_fn(net, jax.random.key(2), 2, batch_size=4)
    np.testing.assert_allclose(
        mc_tiled(x1, x2, get="ntk"), mc(x1, x2, get="ntk"), rtol=1e-4, atol=1e-6
    )
