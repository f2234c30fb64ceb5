import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes import BNN, ConcreteDropout, ModelError
from widelab_bayes.priors import PriorError, effective_weights, prior_kind, register_prior
from widelab_core import layers as L


@dataclasses.dataclass(frozen=True)
class _Scale(L.Layer):
    """A parameter-free layer of a class no rule knows."""

    c: float = 2.0

    def output_shape(self, input_shape):
        return input_shape

    def init(self, key, input_shape):
        return input_shape, ()

    def apply(self, params, x, **kwargs):
        return self.c * x


def _data():
    x = jax.random.normal(jax.random.key(0), (4, 3))
    return x, jnp.sin(x[:, :1])


def test_layer_without_a_prior_rule_is_a_clear_error():
    x, y = _data()
    net = L.serial(L.Dense(5), _Scale(), L.Dense(1))
    with pytest.raises(ModelError, match=r"_Scale.*net/1.*no prior is registered"):
        BNN(net, x, y, noise_std=0.1)


def test_concrete_dropout_has_no_gaussian_prior():
    x, y = _data()
    with pytest.raises(ModelError, match="ConcreteDropout"):
        BNN(L.serial(L.Dense(5), ConcreteDropout(0.1), L.Dense(1)), x, y, noise_std=0.1)


def test_standard_parameterization_is_refused_and_registered_rule_is_used():
    x, y = _data()
    with pytest.raises(ModelError, match="parameterization='standard'"):
        BNN(L.serial(L.Dense(5, parameterization="standard"), L.Dense(1)), x, y, noise_std=0.1)

    @dataclasses.dataclass(frozen=True)
    class _Scale2(_Scale):
        pass

    register_prior(_Scale2, lambda layer: "none")
    assert prior_kind(_Scale2()) == "none"
    BNN(L.serial(L.Dense(5), _Scale2(), L.Dense(1)), x, y, noise_std=0.1)
    with pytest.raises(PriorError, match="no prior is registered"):
        prior_kind(_Scale())


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_effective_weights_reproduce_the_layer(parameterization):
    layer = L.Dense(3, W_std=1.7, parameterization=parameterization)
    x = jax.random.normal(jax.random.key(1), (2, 5))
    _, p = layer.init(jax.random.key(2), x.shape)
    np.testing.assert_allclose(x @ effective_weights(layer, p), layer.apply(p, x), rtol=1e-5)
