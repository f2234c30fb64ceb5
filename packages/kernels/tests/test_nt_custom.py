"""Hand-written layers: ``nt.stax.layer`` / ``requires`` agree with Neural Tangents 0.6.5.

``nt_custom_programs.py`` defines layers the way NT users do and runs unchanged under
NT (fixtures ``data/nt_custom.npz``) and under ``widelab_kernels.nt``.
"""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import widelab_kernels.nt as nt
from widelab_core import layers as L
from widelab_kernels import kernel_fn as wl_kernel_fn
from widelab_kernels.nt import predict, stax

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("nt_custom_programs", HERE / "nt_custom_programs.py")
programs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(programs)
REFERENCE = np.load(HERE / "data" / "nt_custom.npz")


def test_hand_written_layers_match_neural_tangents():
    with jax.enable_x64(True):
        out = programs.hand_written(nt, stax, predict)
    assert {f"hand_written/{k}" for k in out} == set(REFERENCE.files)
    for key, val in out.items():
        ref = REFERENCE[f"hand_written/{key}"]
        if key == "conv_nngp":
            # NT returns this kernel in its internal reversed spatial order (w, w', h, h')
            # when a hand-written layer ends the network; widelab gives (h, h', w, w').
            ref = np.transpose(ref, (0, 1, 4, 5, 2, 3))
        val = np.asarray(val)
        assert val.shape == ref.shape, (key, val.shape, ref.shape)
        np.testing.assert_allclose(val, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max(), err_msg=key)


def test_hand_written_layer_is_a_widelab_layer():
    PositionWeights, Scale = programs.make_layers(stax)
    wh, ww = np.array([0.5, 2.0]), np.array([1.0, 3.0, 0.5])
    layer = PositionWeights(wh, ww)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 2, 3, 1)))
    # finite width: init/apply of the triple, also inside a core serial
    net = L.serial(L.Conv(3, (1, 1)), layer, L.Flatten(), L.Dense(1))
    shape, params = net.init(jax.random.key(0), x.shape)
    assert shape == (2, 1) and net.apply(params, x).shape == (2, 1)
    init_fn, apply_fn, kernel_fn = layer
    np.testing.assert_allclose(
        apply_fn((), x), x * wh[None, :, None, None] * ww[None, None, :, None]
    )
    # the kernel rule: a 1x1 convolution of variance-1 weights keeps the input
    # covariance per channel, so the weighted NNGP is the input's times the weights.
    k = wl_kernel_fn(L.serial(L.Conv(1, (1, 1)), layer.layer))(x, None, "nngp")
    base = wl_kernel_fn(L.Conv(1, (1, 1)))(x, None, "nngp", diagonal_spatial=False)
    pair = np.einsum("a,b,c,d->abcd", wh, ww, wh, ww)  # widelab's (h, w, h', w') order
    np.testing.assert_allclose(k, base * pair[None, None], rtol=1e-6)
    # a raw (init_fn, apply_fn, kernel_fn) triple composes too, as in NT's serial
    _, _, kf = stax.serial(stax.Dense(4), tuple(Scale(2.0)), stax.Relu())
    _, _, ref = stax.serial(stax.Dense(4, W_std=2.0), stax.Relu())
    x2 = jnp.ones((2, 3))
    np.testing.assert_allclose(kf(x2, None, "ntk"), ref(x2, None, "ntk"), rtol=1e-6)


def test_requirements_are_checked():
    with pytest.raises(TypeError, match="unknown requirement"):
        stax.requires(diagonal_space=True)
    with pytest.raises(NotImplementedError, match="batch_axis=1"):
        stax.requires(batch_axis=1)

    @stax.layer
    def NotATriple():
        return 1, 2

    with pytest.raises(TypeError, match="must return"):
        NotATriple()

    @stax.layer
    def Block(width):
        return stax.serial(stax.Dense(width), stax.Relu())

    assert isinstance(Block(3), stax.StaxLayer)
