"""Kernels of FanInProd of independent branches that end in nonlinearities: Neural
Tangents 0.6.5 float64 fixtures (``benchmarks/nt_reference_cases.py prod``) and Monte
Carlo agreement of the finite network at large width."""

import jax
import numpy as np
from widelab_core import layers as L
from widelab_core.testing import load_sibling
from widelab_kernels import kernel_fn

nt_fixture_check = load_sibling(__file__, "nt_fixture_check")
NETS, REFERENCE = nt_fixture_check.load("prod")


def test_prod_of_nonlinear_branches_matches_neural_tangents_float64():
    nt_fixture_check.assert_matches_reference(NETS, REFERENCE, auto_cases=("relu_erf",))


WIDTH, OUT, DRAWS = 256, 256, 32


def test_wide_product_matches_kernel_monte_carlo():
    """FanOut, two branches Dense-Relu and Dense-Erf with their own weights, product,
    Dense: the branch pre-activations are exactly independent Gaussians at any width,
    so per draw the channel mean of ``f f^T`` (NNGP) and ``J J^T`` of one output (NTK)
    are unbiased; their mean over draws must agree with the analytic kernels within
    4.5 standard errors."""
    x = np.concatenate(NETS.inputs()["vec"])  # (5, 4)
    net = L.serial(
        L.FanOut(2),
        L.parallel(
            L.serial(L.Dense(WIDTH, W_std=1.5, b_std=0.1), L.Relu()),
            L.serial(L.Dense(WIDTH, b_std=0.2), L.Erf()),
        ),
        L.FanInProd(),
        L.Dense(OUT, W_std=1.2),
    )
    with jax.enable_x64(True):
        k = kernel_fn(net)(x, None, ("nngp", "ntk"))

        nt_fixture_check.assert_wide_draws_match(net, x, k, key=7, draws=DRAWS, out=OUT)
