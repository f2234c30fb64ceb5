"""Myrtle and CNN-GP presets: NT 0.6.5 agreement (float64), finite nets, names."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import kernel_fn
from widelab_kernels.presets import MYRTLE_STAGES, cnn_gp, myrtle, preset

REF = np.load(pathlib.Path(__file__).resolve().parent / "data" / "presets_nt_reference.npz")


def test_presets_match_neural_tangents():
    """Reference written by benchmarks/presets_nt_reference.py from an independent
    stage-by-stage transcription of the architectures in neural_tangents.stax (it also
    holds Myrtle-7, which differs from Myrtle-5 only in its stage lengths)."""
    names = ["myrtle5", "cnngp-3-pool", "cnngp-3-flatten"]
    with jax.enable_x64(True):
        x1, x2 = jnp.asarray(REF["x1"]), jnp.asarray(REF["x2"])

        @jax.jit  # one compilation for all cases
        def kernels():
            out = {}
            for name in names:
                kf = kernel_fn(preset(name, channels=3), jit=False)
                for tag, b in (("self", None), ("cross", x2)):
                    k = kf(x1, b, get=("nngp", "ntk"))
                    out[f"{name}/{tag}"] = (k.nngp, k.ntk)
            return out

        for key, pair in kernels().items():
            for got, want in zip(pair, REF[key]):
                # NT's x2=None path clips correlations with its own rounding (~1e-9)
                err = np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want))
                assert err < 1e-8, f"{key}: relative error {err:.2e}"


@pytest.mark.parametrize("depth", sorted(MYRTLE_STAGES))
def test_myrtle_structure_and_finite_network(depth):
    net = myrtle(depth, channels=4, n_out=7)
    convs = [l for l in net.layers if isinstance(l, L.Conv)]
    pools = [l for l in net.layers if isinstance(l, L.AvgPool)]
    assert len(convs) + 1 == depth and len(pools) == 2
    assert all(c.padding == "SAME" and c.filter_shape == (3, 3) for c in convs)
    if depth == 5:  # one finite forward pass is enough to show the value trains
        out_shape, params = net.init(jax.random.key(0), (2, 16, 16, 3))
        assert out_shape == (2, 7)
        assert net.apply(params, jnp.ones((2, 16, 16, 3))).shape == (2, 7)


def test_cnn_gp_readouts_and_errors():
    flat = cnn_gp(2, channels=3, readout="flatten", activation="erf", b_std=None)
    assert isinstance(flat.layers[-2], L.Flatten) and isinstance(flat.layers[1], L.Erf)
    assert flat.init(jax.random.key(1), (1, 5, 5, 2))[0] == (1, 10)
    assert isinstance(cnn_gp(4).layers[-2], L.GlobalAvgPool)
    with pytest.raises(ValueError, match="readout must be 'pool' or 'flatten', got 'max'"):
        cnn_gp(2, readout="max")
    with pytest.raises(ValueError, match="depth must be a positive integer, got 0"):
        cnn_gp(0)
    with pytest.raises(ValueError, match=r"depth must be one of \[5, 7, 10\], got 6"):
        myrtle(6)
    with pytest.raises(ValueError, match="unknown network 'myrtle6'; known: myrtle5"):
        preset("myrtle6")
