"""``widelab_kernels.nt.stax``: NT's triples over widelab layers, NT's calling forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import widelab_kernels
from widelab_core import layers as L
from widelab_kernels.nt import stax


def _x(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


def test_layers_unpack_to_triples_and_are_widelab_layers():
    net = stax.serial(stax.Dense(16, W_std=1.3, b_std=0.1), stax.Relu(), stax.Dense(2))
    init_fn, apply_fn, kernel_fn = net
    assert isinstance(net, L.Layer) and len(net) == 3
    shape, params = init_fn(jax.random.key(0), (-1, 3))
    assert shape == (-1, 2)
    x = _x((4, 3))
    np.testing.assert_array_equal(apply_fn(params, x), net.apply(params, x))
    # the same value is a widelab layer: core combinators and widelab's kernel_fn take it
    both = L.serial(net, L.Relu())
    assert both.apply(both.init(jax.random.key(0), x.shape)[1], x).shape == (4, 2)
    np.testing.assert_allclose(
        kernel_fn(x, None, "ntk"), widelab_kernels.kernel_fn(net)(x, None, get="ntk"), rtol=1e-6
    )


def test_serial_accepts_widelab_layers_and_matches_core_kernel():
    nt_net = stax.serial(stax.Dense(8, W_std=1.5, b_std=0.05), L.Erf(), stax.Dense(1, W_std=1.5))
    core = L.serial(L.Dense(8, W_std=1.5, b_std=0.05), L.Erf(), L.Dense(1, W_std=1.5))
    x1, x2 = _x((3, 4)), _x((2, 4), 1)
    got = nt_net.kernel_fn(x1, x2, ("nngp", "ntk"))
    want = widelab_kernels.kernel_fn(core)(x1, x2, get=("nngp", "ntk"))
    np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-6)
    np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-6)


def test_get_forms_follow_nt():
    _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
    x = _x((3, 2))
    assert kernel_fn(x, None, "nngp").shape == (3, 3)
    one = kernel_fn(x, None, ("nngp",))
    assert one._fields == ("nngp",)  # a tuple always gives a named tuple
    k = kernel_fn(x)
    assert isinstance(k, widelab_kernels.Kernel) and k.ntk.shape == (3, 3)
    with pytest.raises(ValueError, match="get must name"):
        kernel_fn(x, None, "nngp_typo")


def test_spatial_outputs_use_nt_interleaved_layout():
    """A fully convolutional network: NT returns (n1, n2, h, h', w, w'); the diagonal of
    that layout over positions equals the diagonal_spatial=True kernel."""
    _, _, kernel_fn = stax.serial(
        stax.Conv(4, (2, 2), padding="SAME"), stax.Relu(), stax.Conv(4, (2, 2), padding="SAME")
    )
    x1, x2 = _x((2, 3, 4, 2)), _x((1, 3, 4, 2), 1)
    full = kernel_fn(x1, x2, "nngp")
    assert full.shape == (2, 1, 3, 3, 4, 4)
    diag = kernel_fn(x1, x2, "nngp", diagonal_spatial=True)
    assert diag.shape == (2, 1, 3, 4)
    np.testing.assert_allclose(jnp.einsum("abhhww->abhw", full), diag, rtol=1e-5, atol=1e-7)
    # symmetry of the all-pairs layout: K(x1, x1)[a, b, h, h', w, w'] = K[b, a, h', h, w', w]
    k = kernel_fn(x1, None, "nngp")
    np.testing.assert_allclose(k, jnp.transpose(k, (1, 0, 3, 2, 5, 4)), rtol=1e-5, atol=1e-7)


def test_dropout_rate_is_the_keep_probability():
    layer = stax.Dropout(0.8)
    assert isinstance(layer.layer, L.Dropout)
    assert layer.layer.rate == pytest.approx(0.2)
    x = jnp.ones((200, 50))
    y = layer.apply_fn((), x, rng=jax.random.key(3))
    kept = float(jnp.mean(y != 0))
    assert abs(kept - 0.8) < 4 * np.sqrt(0.8 * 0.2 / x.size)
    np.testing.assert_allclose(jnp.unique(y), [0.0, 1 / 0.8], rtol=1e-6)
    with pytest.raises(ValueError, match="keep probability"):
        stax.Dropout(0.0)


def test_unsupported_arguments_are_refused_clearly():
    with pytest.raises(NotImplementedError, match="batch_axis=1"):
        stax.Dense(3, batch_axis=1)
    with pytest.raises(NotImplementedError, match="dimension_numbers"):
        stax.Conv(3, (2, 2), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    with pytest.raises(TypeError, match="stax.serial argument 1"):
        stax.serial(stax.Relu(), (lambda: 0, lambda: 0))
    # NT's defaults are accepted even where widelab has no such argument
    assert stax.Dense(3, batch_axis=0, channel_axis=-1, s=(1, 1)).layer == L.Dense(3)


def test_enums_translate_to_strings():
    a = stax.Conv(2, (2, 2), padding=stax.Padding.CIRCULAR)
    assert a.layer.padding == "CIRCULAR"
    att = stax.GlobalSelfAttention(4, 4, 4, 2, attention_mechanism=stax.AttentionMechanism.IDENTITY)
    assert att.layer.attention_mechanism == "IDENTITY"


def test_parallel_fan_and_repeat_compose():
    block = stax.serial(stax.Relu(), stax.Dense(6, W_std=1.2))
    net = stax.serial(
        stax.Dense(6),
        stax.FanOut(2),
        stax.parallel(block, stax.Dense(6)),
        stax.FanInSum(),
        stax.repeat(block, 2),
        stax.Dense(1),
    )
    x = _x((3, 5))
    _, params = net.init_fn(jax.random.key(1), x.shape)
    assert net.apply_fn(params, x).shape == (3, 1)
    k = net.kernel_fn(x, None, "ntk")
    assert k.shape == (3, 3) and bool(jnp.all(jnp.isfinite(k)))
