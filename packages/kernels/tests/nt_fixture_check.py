"""Shared by the Neural Tangents fixture tests of single layer families: load a fixture
set written by ``benchmarks/nt_reference_cases.py`` and compare widelab's kernels with it."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from widelab_kernels import kernel_fn
from widelab_kernels.nt import stax

HERE = pathlib.Path(__file__).resolve().parent


def load(name: str):
    """``(networks module tests/nt_nets_<name>.py, reference arrays)``."""
    module = f"nt_nets_{name}"
    spec = importlib.util.spec_from_file_location(module, HERE / f"{module}.py")
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    return nets, np.load(HERE / "data" / f"nt_reference_{name}.npz")


def assert_matches_reference(nets, reference, auto_cases=()) -> None:
    """Every case of ``nets`` through ``nt.stax`` (one jit compilation) equals NT's kernels;
    the cases in ``auto_cases`` also through widelab's own layout choice (same-position
    covariances where enough). ``nets.KERNEL_KWARGS`` (if set) go to every kernel call."""
    cases = list(nets.cases(stax))
    kwargs = getattr(nets, "KERNEL_KWARGS", {})
    with jax.enable_x64(True):

        @jax.jit
        def all_kernels(inputs):
            out = {}
            for (case, net, _, _), (x1, x2) in zip(cases, inputs):
                k = net[2](x1, x2, ("nngp", "ntk"), **kwargs)
                out[case] = jnp.stack([k.nngp, k.ntk])
                if case in auto_cases:
                    auto = kernel_fn(net, jit=False)(x1, x2, ("nngp", "ntk"), **kwargs)
                    out[case + "|auto"] = jnp.stack([auto.nngp, auto.ntk])
            return out

        got = all_kernels([(c[2], c[3]) for c in cases])
    assert len(cases) == len(reference.files)
    for case, _, _, _ in cases:
        want = reference[case]
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
