"""NT programs run with only the import changed, and agree with Neural Tangents 0.6.5.

``nt_programs.py`` holds programs written against NT's public API (its README's
infinite network, a CNN, ``predict``, empirical kernels, linearisation). The reference
outputs were produced by ``benchmarks/nt_compat_reference.py`` running the very same
functions with ``neural_tangents`` in a separate venv, in float64. Each program runs
as one compiled program (``jax.jit`` of the whole function: its NumPy inputs are built
inside, so the library functions receive the same arguments as when run eagerly) rather
than op by op.
"""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest
import widelab_kernels.nt as nt
from widelab_kernels.nt import predict, stax

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("nt_programs", HERE / "nt_programs.py")
programs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(programs)
REFERENCE = np.load(HERE / "data" / "nt_compat.npz")

# ODE solutions (gradient_descent) agree to the solvers' tolerances, not to round-off.
LOOSE = {"predict/gd_train": 1e-6, "predict/gd_test": 1e-6}


@pytest.mark.parametrize("name", sorted(programs.PROGRAMS))
def test_program_matches_neural_tangents(name):
    with jax.enable_x64(True):
        out = jax.jit(lambda: programs.PROGRAMS[name](nt, stax, predict))()
    expected = {
        k.split("/", 1)[1]: REFERENCE[k] for k in REFERENCE.files if k.startswith(name + "/")
    }
    assert set(out) == set(expected)
    for key, ref in expected.items():
        got = np.asarray(out[key])
        assert got.shape == ref.shape, (key, got.shape, ref.shape)
        tol = LOOSE.get(f"{name}/{key}", 1e-9)
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max(), err_msg=key)
