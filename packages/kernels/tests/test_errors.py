"""Bad input: errors name the layer, its position and the cause."""

import jax.numpy as jnp
import pytest
from widelab_core import layers as L
from widelab_kernels import KernelError, kernel_fn

X = jnp.ones((2, 4))
IMG = jnp.ones((2, 5, 5, 3))
SEQ = jnp.ones((2, 4, 3))


@pytest.mark.parametrize(
    "net, x1, x2, match",
    [
        (L.serial(L.Dense(4), L.Relu()), X, jnp.ones((2, 5)), "x1 and x2 must agree"),
        (
            L.serial(L.Dense(4), L.Relu(), L.Relu()),
            X,
            None,
            r"Relu\(\) at serial\[2\]: its input is not a Gaussian",
        ),
        (L.serial(L.Relu(), L.Dense(4)), X, None, r"Relu\(\) at serial\[0\].*Dense or Conv"),
        (
            L.serial(L.Conv(4, (3, 3)), L.Relu()),
            jnp.ones((2, 5, 3)),
            None,
            r"Conv.*at serial\[0\].*rank 4",
        ),
        (L.serial(L.Conv(4, (7, 7)), L.Relu()), IMG, None, r"Conv.*does not fit the spatial shape"),
        (
            L.serial(L.Dense(4), L.GlobalSelfAttention(4, 4, 4, 1, linear_scaling=False)),
            SEQ,
            None,
            r"GlobalSelfAttention.*at serial\[1\].*linear_scaling=False",
        ),
        (
            L.serial(L.Dense(4), L.LayerNorm(axis=1)),
            SEQ,
            None,
            r"LayerNorm.*must include the channel axis",
        ),
        (
            L.serial(L.Dense(4), L.FanOut(2), L.parallel(L.Relu(), L.Identity()), L.FanInSum()),
            X,
            None,
            r"FanInSum\(\) at serial\[3\]: branches \[0\] are not zero-mean Gaussian",
        ),
        (
            L.serial(L.Dense(4), L.Relu(), L.LayerNorm()),
            X,
            None,
            r"LayerNorm.*at serial\[2\]: its input is not a centred Gaussian",
        ),
    ],
)
def test_errors_name_layer_and_cause(net, x1, x2, match):
    with pytest.raises((KernelError, ValueError), match=match):
        kernel_fn(net)(x1, x2, get="nngp")


def test_non_layer_rejected():
    with pytest.raises(TypeError, match="expected a layer value"):
        kernel_fn(lambda x: x)


def test_fanin_shape_mismatch_names_shapes():
    net = L.serial(L.Dense(4), L.FanOut(2), L.parallel(L.Dense(3), L.Dense(5)), L.FanInSum())
    with pytest.raises(ValueError, match=r"FanInSum.*\(2, 3\), \(2, 5\)"):
        kernel_fn(net)(X, None)


def test_dropout_on_inputs():
    with pytest.raises(KernelError, match="Dropout.*raw inputs"):
        kernel_fn(L.serial(L.Dropout(0.5), L.Dense(2)))(X, None, get="nngp")
    # test mode is the identity
    assert kernel_fn(L.serial(L.Dropout(0.5, mode="test"), L.Dense(2)))(
        X, None, get="nngp"
    ).shape == (2, 2)
