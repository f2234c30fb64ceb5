"""``kernel_fn`` options: ``diagonal_batch``, ``diagonal_spatial``, ``batch_axis`` /
``channel_axis``, a ``Kernel`` as input, and lists of inputs for multi-input networks.

Reference values: Neural Tangents 0.6.5 (``benchmarks/nt_reference_more.py``, float64).
Neural Tangents interleaves the spatial axes of all-pairs covariances (``h, h', w, w'``);
widelab keeps those of ``x1`` first (``h, w, h', w'``), so references are reordered.
"""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import Kernel, KernelError, kernel_fn

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("nt_nets_more", HERE / "nt_nets_more.py")
nt_nets_more = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nt_nets_more)
REFERENCE = np.load(HERE / "data" / "nt_reference_more.npz")


def _unzip(a, n_batch, n_spatial):
    """NT's ``(batch.., s1, s1', s2, s2', ..)`` to ``(batch.., s1, s2, .., s1', s2', ..)``."""
    if a.ndim != n_batch + 2 * n_spatial or n_spatial == 0:
        return a
    first = [n_batch + 2 * i for i in range(n_spatial)]
    second = [n_batch + 2 * i + 1 for i in range(n_spatial)]
    return np.transpose(a, (*range(n_batch), *first, *second))


def test_options_match_neural_tangents_float64():
    with jax.enable_x64(True):
        for case, net, x1, x2, kwargs, get in nt_nets_more.option_cases(L):
            ours = dict(kwargs)
            if not isinstance(x1, list):
                ours.setdefault("diagonal_spatial", False)  # NT's default; widelab's is None
            got = kernel_fn(net)(x1, x2, get, **ours)
            for name, value in zip(get, got):
                want = REFERENCE[f"options|{case}|{name}"]
                d = 0 if isinstance(x1, list) or x1.ndim == 2 else x1.ndim - 2
                n_batch = 1 if name.startswith("cov") and kwargs.get("diagonal_batch", True) else 2
                want = _unzip(want, n_batch, d)
                value = np.asarray(value)
                assert value.shape == want.shape, (case, name, value.shape, want.shape)
                np.testing.assert_allclose(
                    value, want, rtol=1e-12, atol=1e-14, err_msg=f"{case} {name}"
                )


def test_batch_and_channel_axes_move_to_the_standard_layout():
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    net = L.serial(L.Conv(4, (2,), padding="SAME"), L.Relu(), L.GlobalAvgPool(), L.Dense(1))
    want = kernel_fn(net)(x, None, get="ntk")
    moved = np.transpose(x, (2, 1, 0))  # channels first, batch last
    got = kernel_fn(net)(moved, None, get="ntk", batch_axis=-1, channel_axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="batch_axis=1 and channel_axis=1 are the same axis"):
        kernel_fn(net)(x, batch_axis=1, channel_axis=1)


def test_kernel_input_composes_networks():
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    first = L.serial(L.Dense(8, W_std=1.2, b_std=0.1), L.Relu())
    second = L.serial(L.Dense(8, W_std=0.9), L.Gelu(), L.Dense(1))
    k = kernel_fn(first)(x1, x2)
    assert isinstance(k, Kernel)
    got = kernel_fn(second)(k, get=("nngp", "ntk"))
    want = kernel_fn(L.serial(first, second))(x1, x2, get=("nngp", "ntk"))
    np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-6)
    np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-6)
    with pytest.raises(ValueError, match="x1 is a Kernel, so x2 must be None"):
        kernel_fn(second)(k, x2)


def test_diagonal_spatial_true_is_refused_where_pooling_needs_all_pairs():
    net = L.serial(L.Conv(2, (2,)), L.GlobalAvgPool())
    with pytest.raises(KernelError, match="diagonal_spatial=True is impossible"):
        kernel_fn(net)(jnp.ones((2, 3, 1)), diagonal_spatial=True)


def test_tuple_inputs_and_mismatched_lists():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    net = L.serial(L.parallel(L.Dense(4), L.Dense(4)), L.FanInSum(), L.Relu())
    lists = kernel_fn(net)([a, b], None, get="nngp")
    tuples = kernel_fn(net)((a, b), None, get="nngp")
    np.testing.assert_array_equal(lists, tuples)
    with pytest.raises(ValueError, match="x2 must be None or a list of as many"):
        kernel_fn(net)([a, b], [a])
