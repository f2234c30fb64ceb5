"""Kernels of DotGeneral with a constant: Neural Tangents 0.6.5 float64 fixtures
(``benchmarks/nt_reference_cases.py dot_general``), finite-width apply against
``jax.lax.dot_general``, errors."""

import jax
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_core.testing import load_sibling
from widelab_kernels import KernelError, kernel_fn
from widelab_kernels.nt import stax

nt_fixture_check = load_sibling(__file__, "nt_fixture_check")
NETS, REFERENCE = nt_fixture_check.load("dot_general")


def test_dot_general_matches_neural_tangents_float64():
    nt_fixture_check.assert_matches_reference(
        NETS, REFERENCE, auto_cases=("rhs_scalar_flat", "rhs_difference_gap")
    )


def test_dot_general_apply_and_errors():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 2)).astype(np.float32)
    a = np.arange(12.0, dtype=np.float32).reshape(4, 3) - 5.0
    # NT's apply: lax.dot_general with the constant on either side.
    for kw, want in (
        (dict(rhs=a, dimension_numbers=(((1, 2), (1, 0)), ((), ()))), None),
        (dict(lhs=a, dimension_numbers=(((1, 0), (1, 2)), ((), ()))), None),
    ):
        init_fn, apply_fn, _ = stax.DotGeneral(**kw)
        shape, params = init_fn(jax.random.key(0), x.shape)
        if "rhs" in kw:
            want = jax.lax.dot_general(x, a, kw["dimension_numbers"])
        else:
            want = jax.lax.dot_general(a, x, kw["dimension_numbers"])
        got = apply_fn(params, x)
        assert shape == (2, 2) and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    scalar = stax.DotGeneral(rhs=2.0)
    np.testing.assert_allclose(scalar[1]((), x), 2.0 * x, rtol=1e-6)
    assert isinstance(stax.DotGeneral().layer, L.Identity)
    with pytest.raises(ValueError, match="at most one"):
        stax.DotGeneral(lhs=1.0, rhs=2.0)
    # Free constant axes and batch dimensions: NT's apply (lax.dot_general) with the
    # batch axis moved back to the front and the channel axis to the end.
    b = np.arange(6.0, dtype=np.float32).reshape(3, 2) - 2.0
    for kw, (batch_at, channel_at) in (
        (dict(rhs=a, dimension_numbers=(((2,), (0,)), ((), ()))), (0, 2)),
        (dict(lhs=a.T, dimension_numbers=(((1,), (2,)), ((), ()))), (1, 3)),
        (dict(rhs=b, dimension_numbers=(((), ()), ((1,), (0,)))), (1, 3)),
        (dict(lhs=b.T, dimension_numbers=(((), ()), ((1,), (1,)))), (2, 4)),
    ):
        init_fn, apply_fn, _ = stax.DotGeneral(**kw)
        args = (x, kw["rhs"]) if "rhs" in kw else (kw["lhs"], x)
        want = np.moveaxis(
            jax.lax.dot_general(*args, kw["dimension_numbers"]), (batch_at, channel_at), (0, -1)
        )
        shape, params = init_fn(jax.random.key(0), x.shape)
        got = apply_fn(params, x)
        assert shape == want.shape == got.shape, (kw, shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    with pytest.raises(NotImplementedError, match="batch axis 0"):
        stax.DotGeneral(rhs=b, dimension_numbers=(((), ()), ((0,), (0,))))
    with pytest.raises(ValueError, match="distinct axes"):
        stax.DotGeneral(rhs=a, dimension_numbers=(((1,), (0,)), ((2,), (0,))))
    with pytest.raises(L.ShapeError, match="not the batch axis"):
        L.DotGeneral([1.0, 2.0], (-1,), (0,)).init(jax.random.key(0), (2, 3, 2))
    # Contracting positions needs all position pairs.
    layer = L.serial(L.Conv(4, (1, 1)), L.DotGeneral(a, (1, 2), (1, 0)))
    with pytest.raises(KernelError, match="all pairs"):
        kernel_fn(layer)(x, None, "nngp", diagonal_spatial=True)
    # Masks: an output is padding when every input with a nonzero weight is.
    xm = np.array(x)
    xm[0, :, 1] = -1.0
    m = L.DotGeneral([0.0, 1.0, 0.0, 1.0], (2,), (0,))
    y = m.apply((), xm, mask_constant=-1.0)
    assert y.shape == (2, 3, 2)
    _, mask = m.apply_masked((), xm, np.array(xm == -1.0)[..., :1], None)
    assert not np.any(mask)
    _, mask = m.apply_masked(
        (), xm, np.array(xm == -1.0)[..., :1] | (np.arange(4) == 3)[:, None], None
    )
    assert np.all(np.asarray(mask)[0]) and not np.any(np.asarray(mask)[1])
