"""Exact agreement (float64) with Neural Tangents 0.6.5 on every layer type.

The reference kernels were written by ``benchmarks/nt_reference.py`` running
``neural_tangents.stax`` on the networks of ``nt_nets.py`` (a separate venv with
jax 0.4.30); here the same networks are built from ``widelab_core.layers``.
"""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import kernel_fn

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("nt_nets", HERE / "nt_nets.py")
nt_nets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nt_nets)
REFERENCE = np.load(HERE / "data" / "nt_reference.npz")

# Families of cases, one test each (few, so the output stays readable).
FAMILIES = ["mlp_", "cnn_", "layernorm", "dropout", "branches", "repeat", "attention"]


@pytest.mark.parametrize("family", FAMILIES)
def test_matches_neural_tangents(family):
    with jax.enable_x64(True):
        cases = [c for c in nt_nets.cases(L, widelab=True) if c[0].startswith(family)]
        assert len(cases) >= 2

        # One compilation for the whole family: the inputs are arguments, the
        # networks are traced with op-by-op kernel_fn (jit=False) inside.
        @jax.jit
        def all_kernels(inputs):
            out = []
            for (_, net, _, _, mc), (x1, x2) in zip(cases, inputs):
                k = kernel_fn(net, jit=False)(x1, x2, get=("nngp", "ntk"), mask_constant=mc)
                out.append((k.nngp, k.ntk))
            return out

        results = all_kernels([(c[2], c[3]) for c in cases])
        for (case, *_), (nngp, ntk) in zip(cases, results):
            ref = REFERENCE[case]
            for got, want, what in ((nngp, ref[0], "nngp"), (ntk, ref[1], "ntk")):
                got = np.asarray(got)
                assert got.dtype == np.float64
                assert got.shape == want.shape, (case, what)
                err = np.max(np.abs(got - want)) / np.max(np.abs(want))
                # NT's x2=None path differs by rounding in its own clipping of
                # correlations (~1e-9); everything else agrees to ~1e-15.
                assert err < 1e-8, f"{case} {what}: relative error {err:.2e}"
