"""Monte Carlo agreement at width 1024 for spatial ``FanInConcat`` and ``DotGeneral``.

Same estimator and tolerance as ``test_monte_carlo.py`` (whose helpers this file
loads): the mean of per-draw empirical NTKs must lie within 4 standard errors
(Frobenius norm, from the draws) plus the O(1/width) finite-width allowance of the
analytic kernels. Both layers sit between two
nonlinearities, so the analytic rules' outputs feed a further arc-cosine or Erf
kernel and any error in them shows.
"""

import jax
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_core.testing import load_sibling
from widelab_kernels import kernel_fn

mc = load_sibling(__file__, "test_monte_carlo")

NAMES = ["concat + positions mix", "dot_general positions"]


def _branches():
    width = mc.WIDTH
    return [
        # Two independent convolutions stacked along the height axis, then a fixed
        # linear map across all six heights (it mixes positions across the seam, where
        # the two halves must be uncorrelated).
        L.serial(
            L.FanOut(2),
            L.parallel(L.Conv(width, (1, 1), W_std=1.3), L.Conv(width, (1, 1), b_std=0.1)),
            L.FanInConcat(1),
            L.DotGeneral([0.5, -0.9, 0.3, 1.0, 0.7, -0.4], (1,), (0,)),
            L.Relu(),
            L.Flatten(),
        ),
        # y[n, w, c] = sum_h A[h] x[n, h, w, c] on Gaussian pre-activations.
        L.serial(
            L.Conv(width, (1, 1), b_std=0.1),
            L.DotGeneral([0.8, -1.1, 0.4], (1,), (0,)),
            L.Erf(),
            L.Flatten(),
        ),
    ]


@pytest.mark.slow
def test_spatial_concat_and_dot_general_ntk():
    x1 = jax.random.normal(jax.random.key(21), (2, 3, 4, 2))
    x2 = jax.random.normal(jax.random.key(22), (1, 3, 4, 2))
    first = L.serial(L.Conv(mc.WIDTH, (2, 2), padding="SAME", W_std=1.4, b_std=0.2), L.Relu())
    branches = _branches()
    readout = L.Dense(1, W_std=1.2)
    analytic = mc._per_branch_analytic(first, branches, readout, x1, x2)
    samples = mc._mc_ntk(mc._branch_net(first, branches, readout), x1, x2, key=3, n=64)
    # The NTK of these networks is built from every layer's NNGP and its derivative
    # kernel, so a wrong concatenation or position map shows in it.
    mc._check(NAMES, samples, analytic, "ntk")


def test_concat_and_dot_general_kernels_are_differentiable_in_float32():
    """jit and grad of the kernel with respect to the inputs, finite and equal to a
    central finite difference along one direction."""
    concat, dot = _branches()
    net = L.serial(
        L.Conv(8, (2, 2), padding="SAME"),
        L.Relu(),
        L.FanOut(2),
        L.parallel(concat, dot),
        L.FanInConcat(),
    )
    f = kernel_fn(net)
    x = np.asarray(np.random.default_rng(5).normal(size=(2, 3, 4, 2)), np.float32)
    v = np.asarray(np.random.default_rng(6).normal(size=x.shape), np.float32)
    loss = jax.jit(lambda a: f(a, None, get="ntk").sum())
    g = jax.grad(loss)(x)
    assert g.dtype == np.float32 and np.all(np.isfinite(np.asarray(g)))
    eps = 1e-2
    fd = (float(loss(x + eps * v)) - float(loss(x - eps * v))) / (2 * eps)
    np.testing.assert_allclose(float(np.sum(np.asarray(g) * v)), fd, rtol=2e-2)
