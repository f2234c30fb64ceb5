"""Every layer: shape inference, jit, vmap, float32 and float64, shape errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L

# (layer, input shape): one case per layer type and interesting configuration.
CASES = [
    (L.Dense(5, W_std=1.5, b_std=0.1), (3, 4)),
    (L.Dense(5, parameterization="standard", b_std=0.2), (3, 6, 4)),
    (L.Conv(4, (3,), b_std=0.1), (2, 7, 3)),
    (L.Conv(4, (2, 3), strides=(2, 1), padding="SAME"), (2, 5, 6, 3)),
    (
        L.Conv(3, (3, 2), strides=(2, 2), padding="CIRCULAR", parameterization="standard"),
        (2, 5, 4, 2),
    ),
    (L.Conv(2, (2, 2, 2), padding="SAME"), (1, 3, 4, 3, 2)),
    (L.AvgPool((2,)), (2, 6, 3)),
    (L.AvgPool((3, 2), strides=(2, 2), padding="SAME"), (2, 5, 6, 3)),
    (L.AvgPool((3,), padding="SAME", normalize_edges=True), (2, 6, 3)),
    (L.SumPool((2, 2), padding="CIRCULAR"), (2, 5, 4, 3)),
    (L.SumPool((3,), strides=(3,)), (2, 7, 3)),
    (L.GlobalAvgPool(), (2, 5, 4, 3)),
    (L.GlobalSumPool(), (2, 6, 3)),
    (L.Flatten(), (2, 3, 4, 2)),
    (L.Identity(), (2, 3)),
    (L.LayerNorm(), (2, 5, 3)),
    (L.LayerNorm(axis=(1, 2)), (2, 5, 3)),
    (L.LayerNorm(axis=(1, 2, 3)), (2, 4, 2, 3)),
    (L.Dropout(0.3, mode="test"), (2, 5)),
    (L.GlobalSelfAttention(6, 4, 3, 2), (2, 5, 4)),
    (
        L.GlobalSelfAttention(
            6, 4, 3, 2, linear_scaling=False, b_std=0.1, attention_mechanism="IDENTITY"
        ),
        (2, 3, 2, 4),
    ),
    (L.GlobalSelfAttention(5, 3, 3, 2, pos_emb_type="SUM", val_pos_emb=True), (2, 5, 4)),
    (L.GlobalSelfAttention(5, 3, 3, 2, pos_emb_type="CONCAT", n_chan_pos_emb=2), (2, 5, 4)),
    (L.GlobalSelfAttention(5, 3, 3, 1, causal=True), (2, 6, 4)),
    (L.serial(L.Dense(4), L.Relu(), L.Dense(2)), (3, 5)),
    (L.serial(L.FanOut(3), L.parallel(L.Dense(4), L.Identity(), L.Dense(4)), L.FanInSum()), (2, 4)),
    (L.serial(L.FanOut(2), L.parallel(L.Dense(4), L.Relu()), L.FanInProd()), (2, 4)),
    (L.serial(L.FanOut(2), L.parallel(L.Dense(2), L.Dense(3)), L.FanInConcat()), (2, 4)),
    (L.serial(L.FanOut(2), L.FanInConcat(axis=1)), (2, 3, 4)),
    (L.repeat(L.serial(L.Dense(4), L.Erf()), 3), (2, 4)),
]


ELEMENTWISE = [
    L.Relu(),
    L.LeakyRelu(0.1),
    L.ABRelu(-0.5, 2.0),
    L.Abs(),
    L.Erf(a=2.0, b=0.5, c=0.1),
    L.Gelu(),
    L.Gelu(approximate=True),
    L.Sin(a=1.0, b=2.0, c=0.5),
    L.Cos(),
    L.Gaussian(1.0, -0.5),
    L.Exp(1.0, 0.5),
    L.Sign(),
    L.Sigmoid_like(),
    L.Tanh(),
    L.Elementwise(jnp.sin),
    L.ElementwiseNumerical(jnp.cos, deg=10),
]


def _ids():
    return [f"{i}-{layer.describe()[:40]}" for i, (layer, _) in enumerate(CASES)]


def _input(shape, seed=0, dtype=None):
    """Test inputs from numpy (no XLA compile per shape)."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return x.astype(np.float32 if dtype is None else dtype)


# float64: one case per layer type (the float32 pass covers every configuration).
_F64 = {0, 2, 6, 9, 11, 12, 13, 14, 17, 18, 20, 24, 27, 29}
DTYPE_CASES = [(layer, shape, False) for layer, shape in CASES] + [
    (layer, shape, True) for i, (layer, shape) in enumerate(CASES) if i in _F64
]


@pytest.mark.parametrize(
    ("layer", "shape", "x64"),
    DTYPE_CASES,
    ids=[f"{lay.describe()[:32]}-{'f64' if x64 else 'f32'}" for lay, _, x64 in DTYPE_CASES],
)
def test_shape_inference_jit_vmap_and_dtype(layer, shape, x64):
    """init, apply and vmap(apply) in one compile per case keeps this fast."""
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        out_shape = layer.output_shape(shape)
        x = _input(shape, dtype=dtype)
        x2 = _input(shape, seed=5, dtype=dtype)
        box = {}

        @jax.jit
        def run(key, x, xs):
            box["shape"], params = layer.init(key, shape)
            y = layer.apply(params, x)
            return params, y, jax.vmap(layer.apply, in_axes=(None, 0))(params, xs)

        params, y, ys = run(jax.random.key(1), x, np.stack([x2, x]))
        y, ys = np.asarray(y), np.asarray(ys)
        assert tuple(box["shape"]) == tuple(out_shape)
        for leaf in jax.tree_util.tree_leaves(params):
            assert leaf.dtype == dtype
        assert y.shape == tuple(out_shape)
        assert y.dtype == dtype
        assert np.all(np.isfinite(np.asarray(y)))
        # vmap over a stack of two input batches equals applying to each.
        assert ys.shape == (2, *out_shape)
        assert ys.dtype == dtype
        np.testing.assert_allclose(ys[1], y, rtol=1e-5, atol=1e-5)
        assert not np.allclose(ys[0], y) or layer.describe().startswith("Sign")


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_elementwise_layers_shapes_jit_vmap_and_dtype(x64):
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        x = _input((2, 3, 4), dtype=dtype)
        for layer in ELEMENTWISE:
            assert layer.output_shape((2, 3, 4)) == (2, 3, 4)
            assert layer.init(jax.random.key(0), (2, 3, 4)) == ((2, 3, 4), ())

        @jax.jit
        def run(x):
            ys = [layer.apply((), x) for layer in ELEMENTWISE]
            vs = [jax.vmap(lambda xi, f=layer: f.apply((), xi))(x) for layer in ELEMENTWISE]
            return ys, vs

        ys, vs = run(x)
        for layer, y, v in zip(ELEMENTWISE, ys, vs):
            assert y.shape == x.shape and y.dtype == dtype, layer
            np.testing.assert_allclose(v, y, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ys[0], np.maximum(x, 0))
        np.testing.assert_allclose(ys[-2], np.sin(x), rtol=1e-6, atol=1e-7)


JIT_VS_EAGER = [CASES[i] for i in (1, 3, 8, 17, 20, 22, 29)]


@pytest.mark.parametrize(("layer", "shape"), JIT_VS_EAGER, ids=lambda v: str(v)[:30])
def test_jit_equals_eager(layer, shape):
    _, params = layer.init(jax.random.key(1), shape)
    x = _input(shape)
    np.testing.assert_allclose(
        jax.jit(layer.apply)(params, x), layer.apply(params, x), rtol=1e-5, atol=1e-5
    )


def test_batch_minus_one_in_shape_inference():
    net = L.serial(L.Conv(3, (2,), padding="SAME"), L.AvgPool((2,), strides=(2,)), L.Flatten())
    assert net.output_shape((-1, 6, 2)) == (-1, 9)


def test_vmap_over_an_ensemble_of_params():
    net = L.serial(L.Dense(4, b_std=0.1), L.Relu(), L.GlobalAvgPool(), L.Dense(1))
    keys = jax.random.split(jax.random.key(0), 3)
    x = _input((2, 5, 3))

    @jax.jit
    def ensemble(keys, x):
        params = jax.vmap(lambda k: net.init(k, (2, 5, 3))[1])(keys)
        return jax.vmap(lambda p: net.apply(p, x))(params)

    ys = np.asarray(ensemble(keys, x))
    assert ys.shape == (3, 2, 1)
    p1 = net.init(jax.random.split(jax.random.key(0), 3)[1], (2, 5, 3))[1]
    np.testing.assert_allclose(ys[1], net.apply(p1, x), rtol=1e-5, atol=1e-6)


def test_dropout_train_under_jit_and_vmap():
    layer = L.Dropout(0.5)
    x = np.ones((3, 8), np.float32)
    key = jax.random.key(3)
    keys = jax.random.split(key, 4)

    @jax.jit
    def run(keys):
        return jax.vmap(lambda k: layer.apply((), x, key=k))(keys), layer.apply((), x, key=keys[2])

    ys, y2 = map(np.asarray, run(keys))
    assert ys.shape == (4, 3, 8)
    np.testing.assert_array_equal(ys[2], y2)
    assert not np.array_equal(ys[0], ys[1])


# Shape errors -------------------------------------------------------------

ERROR_CASES = [
    (
        L.serial(L.Dense(4), L.Relu(), L.Conv(3, (3, 3))),
        (2, 5, 4),
        "Conv",
        "serial[2]",
        "(2, 5, 4)",
    ),
    (L.serial(L.Dense(4), L.AvgPool((2,))), (2, 3), "AvgPool", "serial[1]", "(2, 4)"),
    (L.serial(L.Conv(4, (5,))), (2, 3, 4), "Conv", "serial[0]", "(2, 3, 4)"),
    (
        L.serial(L.Identity(), L.GlobalSelfAttention(4, 2, 2, 1)),
        (2, 4),
        "GlobalSelfAttention",
        "serial[1]",
        "(2, 4)",
    ),
    (
        L.serial(L.GlobalSelfAttention(4, 2, 2, 1, pos_emb_type="SUM", n_chan_pos_emb=3)),
        (2, 5, 4),
        "GlobalSelfAttention",
        "serial[0]",
        "(2, 5, 4)",
    ),
    (L.serial(L.Dense(3), L.LayerNorm(axis=3)), (2, 4), "LayerNorm", "serial[1]", "(2, 3)"),
    (
        L.serial(
            L.FanOut(2), L.parallel(L.Dense(3), L.serial(L.Relu(), L.SumPool((2,)))), L.FanInSum()
        ),
        (2, 4),
        "SumPool",
        "serial[1]/parallel[1]/serial[1]",
        "(2, 4)",
    ),
    (
        L.serial(L.FanOut(2), L.parallel(L.Dense(3), L.Dense(4)), L.FanInSum()),
        (2, 4),
        "FanInSum",
        "serial[2]",
        "(2, 3)",
    ),
    (
        L.serial(L.Dense(3), L.repeat(L.Conv(3, (2,)), 2)),
        (2, 4),
        "Conv",
        "serial[1]/repeat",
        "(2, 3)",
    ),
]


@pytest.mark.parametrize(("net", "shape", "name", "where", "shown"), ERROR_CASES)
def test_shape_errors_name_layer_position_and_shape(net, shape, name, where, shown):
    with pytest.raises(L.ShapeError) as info:
        net.init(jax.random.key(0), shape)
    msg = str(info.value)
    assert msg.startswith(name), msg
    assert f" at {where}:" in msg, msg
    assert shown in msg, msg


def test_apply_with_wrong_input_shape_names_both_shapes():
    net = L.serial(L.Relu(), L.Conv(4, (3,)))
    _, params = net.init(jax.random.key(0), (2, 6, 3))
    with pytest.raises(L.ShapeError, match=r"^Conv.* at serial\[1\]: .*\(2, 6, 5\).*\(3, 3, 4\)"):
        net.apply(params, jnp.ones((2, 6, 5)))
    att = L.serial(L.GlobalSelfAttention(4, 2, 2, 1))
    _, params = att.init(jax.random.key(0), (2, 6, 3))
    with pytest.raises(L.ShapeError, match=r"GlobalSelfAttention.* at serial\[0\]: .*\(2, 6, 5\)"):
        att.apply(params, jnp.ones((2, 6, 5)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: L.Conv(0, (3,)),
        lambda: L.Conv(3, ()),
        lambda: L.Conv(3, (3,), padding="FULL"),
        lambda: L.Conv(3, (3, 3), strides=(1,)),
        lambda: L.Conv(3, (3,), parameterization="mup"),
        lambda: L.AvgPool((0,)),
        lambda: L.SumPool((2,), padding="same"),
        lambda: L.LayerNorm(axis=()),
        lambda: L.LayerNorm(eps=-1.0),
        lambda: L.Dropout(1.0),
        lambda: L.Dropout(-0.1),
        lambda: L.Dropout(0.1, mode="eval"),
        lambda: L.GlobalSelfAttention(4, 2, 2, 0),
        lambda: L.GlobalSelfAttention(4, 2, 2, 1, attention_mechanism="TANH"),
        lambda: L.GlobalSelfAttention(4, 2, 2, 1, pos_emb_type="ROTARY"),
    ],
)
def test_bad_hyperparameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_layers_are_immutable_hashable_values():
    a = L.Conv(3, [2, 2], strides=[1, 1], padding="SAME")
    assert a.filter_shape == (2, 2) and a.strides == (1, 1)
    assert a == L.Conv(3, (2, 2), strides=(1, 1), padding="SAME")
    assert hash(a) == hash(L.Conv(3, (2, 2), strides=(1, 1), padding="SAME"))
    assert L.LayerNorm(axis=[1, 2]).axis == (1, 2)
    with pytest.raises(AttributeError):
        a.out_chan = 4
