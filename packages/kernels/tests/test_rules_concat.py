"""Kernels of FanInConcat along spatial axes: Neural Tangents 0.6.5 float64 fixtures
(``benchmarks/nt_reference_cases.py concat``), errors."""

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
_spec = importlib.util.spec_from_file_location("nt_nets_concat", HERE / "nt_nets_concat.py")
nt_nets_concat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nt_nets_concat)
REFERENCE = np.load(HERE / "data" / "nt_reference_concat.npz")


def test_spatial_concat_matches_neural_tangents_float64():
    cases = list(nt_nets_concat.cases(stax))
    with jax.enable_x64(True):

        @jax.jit
        def all_kernels(inputs):
            out = {}
            for (case, net, _, _), (x1, x2) in zip(cases, inputs):
                k = net[2](x1, x2, ("nngp", "ntk"))
                out[case] = jnp.stack([k.nngp, k.ntk])
                if case in ("width_flat", "height_gap"):
                    # widelab's own layout choice (same-position covariances where enough)
                    auto = kernel_fn(net, jit=False)(x1, x2, ("nngp", "ntk"))
                    out[case + "|auto"] = jnp.stack([auto.nngp, auto.ntk])
            return out

        got = all_kernels([(c[2], c[3]) for c in cases])
    assert len(cases) == len(REFERENCE.files)
    for case, _, _, _ in cases:
        want = REFERENCE[case]
        ours = np.asarray(got[case])
        assert ours.shape == want.shape, (case, ours.shape, want.shape)
        scale = np.max(np.abs(want))
        err = np.max(np.abs(ours - want)) / scale
        # NT's arc-cosine kernel loses ~1e-9 (relative) on the diagonal of x1 = x2.
        tol = 3e-9 if case.endswith("x1x1") or "1d" in case else 1e-12
        assert err < tol, (case, err)
        if case + "|auto" in got:
            auto_err = np.max(np.abs(np.asarray(got[case + "|auto"]) - want)) / scale
            assert auto_err < tol, (case, "auto layout", auto_err)


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
