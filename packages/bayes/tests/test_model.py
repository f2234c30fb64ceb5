import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes.model import BNN, ModelError, split_readout
from widelab_core import layers as L
from widelab_core.testing import float64


def _data(n=5, d=2, k=1):
    x = jax.random.normal(jax.random.key(0), (n, d))
    y = jnp.sin(x[:, :k] * 2.0)
    return x, y


def test_log_density_matches_hand_computation():
    with float64():
        x, y = _data()
        net = L.serial(L.Dense(7, W_std=1.4, b_std=0.2), L.Erf(), L.Dense(1, W_std=1.1, b_std=0.3))
        m = BNN(net, x, y, noise_std=0.4)
        p = m.init(jax.random.key(1))
        # the model's outputs equal the network's own apply on the same params
        f = net.apply(m.net_params(p), x)
        np.testing.assert_allclose(m.apply(p), f, rtol=1e-12)
        theta = np.concatenate([np.ravel(v) for v in jax.tree.leaves(p)])
        r = np.asarray(y - f)
        want = (
            -0.5 * theta @ theta
            - 0.5 * theta.size * math.log(2 * math.pi)
            - 0.5 * np.sum(r * r) / 0.16
            - 0.5 * r.size * math.log(2 * math.pi * 0.16)
        )
        np.testing.assert_allclose(float(m.log_density(p)), want, rtol=1e-12)


def test_residual_and_nested_serial_readout():
    x, y = _data(k=2)
    block = L.serial(L.Dense(6, W_std=1.2), L.Relu(), L.Dense(6, W_std=1.2))
    net = L.serial(
        L.Dense(6, b_std=0.1),
        L.FanOut(2),
        L.parallel(block, L.Identity()),
        L.FanInSum(),
        L.serial(L.Relu(), L.Dense(2, b_std=0.1)),
    )
    m = BNN(net, x, y, noise_std=0.5)
    p = m.init(jax.random.key(2))
    np.testing.assert_allclose(m.apply(p), net.apply(m.net_params(p), x), rtol=1e-6)
    assert m.width == 6 and m.out_dim == 2
    body, readout, _ = split_readout(net)
    assert readout.out_dim == 2


@pytest.mark.parametrize(
    "net, match",
    [
        (L.serial(L.Dense(4), L.Relu()), "last layer is Relu"),
        (L.Relu(), "must be a Dense or a serial"),
        (L.serial(L.Dense(4, parameterization="standard"), L.Dense(1)), "NTK parameterization"),
    ],
)
def test_bad_networks(net, match):
    x, y = _data()
    with pytest.raises(ModelError, match=match):
        BNN(net, x, y, noise_std=0.1)


def test_bad_data():
    x, y = _data()
    net = L.serial(L.Dense(4), L.Relu(), L.Dense(1))
    with pytest.raises(ModelError, match="disagree on the number of points"):
        BNN(net, x[:4], y, noise_std=0.1)
    with pytest.raises(ModelError, match="out_dim=1"):
        BNN(net, x, jnp.concatenate([y, y], 1), noise_std=0.1)
    with pytest.raises(ModelError, match=r"y has 1 non-finite entries \(first at \(2, 0\)\)"):
        BNN(net, x, y.at[2, 0].set(jnp.nan), noise_std=0.1)
    with pytest.raises(ModelError, match="x has 1 non-finite"):
        BNN(net, x.at[0, 1].set(jnp.inf), y, noise_std=0.1)
    with pytest.raises(ModelError, match="noise_std must be positive"):
        BNN(net, x, y, noise_std=0.0)
    with pytest.raises(ModelError, match=r"\(N, width\)"):
        BNN(L.serial(L.Dense(3), L.Dense(1)), x[:, :, None], y, noise_std=0.1)
