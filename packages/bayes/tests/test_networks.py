import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes import BNN, Repriorised
from widelab_bayes.networks import fcn, resnet, scaled_residual
from widelab_core import layers as L
from widelab_core.testing import float64


def test_scaled_residual_by_hand():
    with float64():
        dense = L.Dense(4, W_std=1.3, b_std=0.2)
        block = scaled_residual(L.serial(L.Relu(), dense), alpha=0.6)
        x = jax.random.normal(jax.random.key(0), (3, 4))
        _, params = block.init(jax.random.key(1), x.shape)
        got = block.apply(params, x)
        dense_params = params[1][0][0][1]
        want = 0.6 * dense.apply(dense_params, jax.nn.relu(x)) + 0.8 * x
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("make", [fcn, resnet])
def test_presets_are_repriorisable_with_ten_outputs(make):
    with float64():
        x = jax.random.normal(jax.random.key(0), (6, 5))
        y = np.eye(10)[np.arange(6)] - 0.1
        net = make(9, depth=3, out_dim=10)
        rep = Repriorised(BNN(net, x, y, noise_std=0.4))
        p = rep.init(jax.random.key(2))
        np.testing.assert_allclose(rep.log_density(p), rep.log_density_direct(p), rtol=1e-10)
        raw = rep.to_raw(p)
        f = net.apply(rep.model.net_params(raw), x)
        np.testing.assert_allclose(rep.predict(p), f, rtol=1e-9, atol=1e-12)


def test_resnet_keeps_the_second_moment_through_depth():
    """With alpha^2 + (1 - alpha^2) = 1 and a residual branch that preserves the
    second moment in expectation (W_std^2 E[relu(u)^2] = E[u^2] for W_std = sqrt(2),
    no bias), the mean squared pre-activation is the same after 1 and 6 blocks. Both are
    read from the same 200 prior draws of a 6-block network (one compilation); the
    tolerance is 4 standard errors of the paired difference."""
    x = jax.random.normal(jax.random.key(0), (1, 64))
    layers = resnet(256, 6, W_std=math.sqrt(2.0), b_std=None).layers[:-2]
    net, first = L.serial(*layers), L.serial(*layers[:2])  # stem + 6 blocks; stem + 1

    def moments(k):
        params = net.init(k, x.shape)[1]
        return jnp.array(
            [jnp.mean(first.apply(params[:2], x) ** 2), jnp.mean(net.apply(params, x) ** 2)]
        )

    draws = np.asarray(jax.jit(jax.vmap(moments))(jax.random.split(jax.random.key(1), 200)))
    diff = draws[:, 0] - draws[:, 1]
    se = diff.std() / math.sqrt(diff.size)
    assert abs(diff.mean()) < 4 * se, (draws.mean(0), se)
    assert se < 0.1 * draws[:, 0].mean()  # the check has power: the s.e. is small


@pytest.mark.parametrize("kwargs", [dict(width=0), dict(depth=0), dict(alpha=1.5)])
def test_bad_preset_arguments(kwargs):
    args = dict(width=4, depth=1) | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        resnet(**args)
