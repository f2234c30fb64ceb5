import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes.dropout import (
    ConcreteDropout,
    concrete_dropout_regulariser,
    concrete_dropout_study,
    dropout_probabilities,
    dropout_probability,
    heteroscedastic_nll,
    mc_dropout_predict,
)
from widelab_core import layers as L


def test_layer_init_apply_and_mask_statistics():
    layer = ConcreteDropout(init_p=0.3)
    shape, params = layer.init(jax.random.key(0), (-1, 5))
    assert shape == (-1, 5)
    assert float(dropout_probability(params)) == pytest.approx(0.3, rel=1e-6)
    x = jnp.ones((400, 50))
    np.testing.assert_array_equal(layer.apply(params, x), x)  # no key: expectation
    y = np.asarray(layer.apply(params, x, key=jax.random.key(1)))
    dropped = (y * 0.7) < 0.5  # (1 - z) / (1 - p) with z ~ relaxed Bernoulli(p), t = 0.1
    frac = dropped.mean()
    se = np.sqrt(0.3 * 0.7 / dropped.size)
    assert abs(frac - 0.3) < 4 * se
    # E[1 - z] = 1 - p only approximately at t = 0.1; the rescaled mean stays near 1
    assert abs(y.mean() - 1.0) < 0.05


def test_spatial_variant_drops_whole_channels():
    layer = ConcreteDropout(init_p=0.5, spatial=True)
    _, params = layer.init(jax.random.key(0), (2, 6, 6, 8))
    y = np.asarray(layer.apply(params, jnp.ones((2, 6, 6, 8)), key=jax.random.key(3)))
    assert np.allclose(y, y[:, :1, :1, :])  # one value per (example, channel)
    assert y.min() < 0.5 < y.max()
    with pytest.raises(ValueError, match="spatial"):
        layer.init(jax.random.key(0), (2, 8))


def test_regulariser_matches_the_formula():
    net = L.serial(
        ConcreteDropout(0.2),
        L.Dense(4, W_std=2.0),
        L.Relu(),
        ConcreteDropout(0.4),
        L.Dense(1, parameterization="standard"),
    )
    _, params = net.init(jax.random.key(0), (-1, 3))
    n, ls, tau = 50, 0.1, 2.0
    got = float(concrete_dropout_regulariser(net, params, n_data=n, lengthscale=ls, precision=tau))
    want = 0.0
    for p, w, k in (
        (0.2, np.asarray(params[1]["W"]) * 2.0 / np.sqrt(3), 3),
        (0.4, np.asarray(params[4]["W"]), 4),
    ):
        want += ls**2 / (tau * n) * np.sum(w**2) / (1 - p)
        want += 2 / (tau * n) * k * (p * np.log(p) + (1 - p) * np.log(1 - p))
    assert got == pytest.approx(want, rel=1e-5)
    assert dropout_probabilities(net, params) == pytest.approx([0.2, 0.4], rel=1e-6)
    # the regulariser pulls p through both terms: it is differentiable in logit_p
    g = jax.grad(lambda pr: concrete_dropout_regulariser(net, pr, n_data=n))(params)
    assert float(g[0]["logit_p"]) != 0.0
    with pytest.raises(ValueError, match="no weight layer"):
        bad = L.serial(L.Dense(2), ConcreteDropout())
        _, bp = bad.init(jax.random.key(0), (-1, 3))
        concrete_dropout_regulariser(bad, bp, n_data=10)
    with pytest.raises(ValueError, match="n_data"):
        concrete_dropout_regulariser(net, params, n_data=0)


def test_spatial_dropout_before_a_convolution():
    net = L.serial(ConcreteDropout(0.25, spatial=True), L.Conv(3, (2, 2), W_std=1.5))
    shape, params = net.init(jax.random.key(0), (2, 5, 5, 4))
    w = np.asarray(params[1]["W"])
    assert w.shape[-2] == 4  # K = input channels
    y = net.apply(params, jnp.ones((2, 5, 5, 4)), key=jax.random.key(1))
    assert y.shape == shape
    eff = w * 1.5 / np.sqrt(np.prod(w.shape[:-1]))
    p = 0.25
    want = 1e-4 / 10 * np.sum(eff**2) / (1 - p) + 2 / 10 * 4 * (
        p * np.log(p) + (1 - p) * np.log(1 - p)
    )
    got = float(concrete_dropout_regulariser(net, params, n_data=10, lengthscale=1e-2))
    assert got == pytest.approx(want, rel=1e-5)


def test_mc_prediction_decomposition():
    net = L.serial(L.Dense(8, b_std=1.0), L.Relu(), ConcreteDropout(0.3), L.Dense(2))
    _, params = net.init(jax.random.key(0), (-1, 1))
    x = jnp.linspace(-1, 1, 5)[:, None]
    pred = mc_dropout_predict(net, params, x, key=jax.random.key(1), n_samples=16)
    keys = jax.random.split(jax.random.key(1), 16)
    apply = jax.jit(lambda k: net.apply(params, x, key=k))
    outs = np.stack([np.asarray(apply(k)) for k in keys])
    np.testing.assert_allclose(pred.mean, outs[..., 0].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.epistemic, outs[..., 0].var(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pred.aleatoric, np.exp(outs[..., 1]).mean(0), rtol=1e-5)
    np.testing.assert_allclose(pred.total, pred.epistemic + pred.aleatoric, rtol=1e-6)
    assert np.all(np.asarray(pred.epistemic) > 0)
    with pytest.raises(ValueError, match="n_samples"):
        mc_dropout_predict(net, params, x, key=jax.random.key(1), n_samples=1)


def test_heteroscedastic_nll_and_errors():
    out = jnp.asarray([[1.0, 0.0], [2.0, jnp.log(4.0)]])
    y = jnp.asarray([2.0, 2.0])
    assert float(heteroscedastic_nll(out, y)) == pytest.approx((1.0 + 0.0 + 0.0 + np.log(4.0)) / 2)
    with pytest.raises(ValueError, match="need out"):
        heteroscedastic_nll(jnp.ones((2, 3)), y)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="init_p"):
            ConcreteDropout(init_p=bad)
    with pytest.raises(ValueError, match="temperature"):
        ConcreteDropout(temperature=0.0)


@pytest.mark.slow
def test_learned_p_falls_with_dataset_size():
    st = concrete_dropout_study(
        (10, 1000), key=jax.random.key(0), hidden=16, depth=2, steps=1500, batch_size=64
    )
    p = st.probabilities
    assert p.shape == (2, 3)
    # hidden-layer dropout: large for N = 10 (seen 0.1-0.4 over seeds), tiny for N = 1000
    assert p[0, 1:].mean() > 5 * p[1, 1:].mean()
    # first layer (one input unit): small at every size
    assert np.all(p[:, 0] < 0.1)
    # coarse check of the aleatoric head (true noise std 1.0): the final SGD iterate of a
    # short run lands within about 0.25 (seen over seeds); a wrong transform of the
    # predicted log variance (exp(2s), no exp) would be off by far more
    assert abs(st.noise_std[1] - 1.0) < 0.35
    with pytest.raises(ValueError, match="sizes"):
        concrete_dropout_study((1,), key=jax.random.key(0))
