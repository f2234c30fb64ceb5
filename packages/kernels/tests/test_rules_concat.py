"""Kernels of FanInConcat along spatial axes: Neural Tangents 0.6.5 float64 fixtures
(``benchmarks/nt_reference_cases.py concat``), errors."""

import numpy as np
import pytest
from widelab_core import layers as L
from widelab_core.testing import load_sibling
from widelab_kernels import KernelError, kernel_fn

nt_fixture_check = load_sibling(__file__, "nt_fixture_check")
NETS, REFERENCE = nt_fixture_check.load("concat")


def test_spatial_concat_matches_neural_tangents_float64():
    nt_fixture_check.assert_matches_reference(
        NETS, REFERENCE, auto_cases=("width_flat", "height_gap")
    )


def test_spatial_concat_errors_and_masks():
    x = np.ones((2, 3, 4, 2))
    branches = L.serial(L.FanOut(2), L.parallel(L.Conv(4, (1, 1)), L.Conv(4, (1, 1))))
    with pytest.raises(KernelError, match="batch axis"):
        kernel_fn(L.serial(branches, L.FanInConcat(0)))(x, None, "nngp")
    # Branches that are not independent Gaussians have unknown cross-branch covariances
    # between positions, which the all-pairs layout needs.
    relu_branches = L.serial(L.FanOut(2), L.parallel(L.Relu(), L.Identity()))
    with pytest.raises(KernelError, match="not zero-mean Gaussian"):
        kernel_fn(L.serial(L.Conv(4, (1, 1)), relu_branches, L.FanInConcat(1)))(
            x, None, "nngp", diagonal_spatial=False
        )
    # Masks are concatenated with the positions they belong to.
    xm = np.ones((2, 3, 4, 2))
    xm[0, 1] = -1.0
    km = kernel_fn(L.serial(branches, L.FanInConcat(1)))(
        xm, None, None, mask_constant=-1.0, diagonal_spatial=True
    )
    expect_mask = np.zeros((2, 6, 4), bool)
    expect_mask[0, [1, 4]] = True
    np.testing.assert_array_equal(np.asarray(km.mask1), expect_mask)
