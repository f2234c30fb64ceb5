"""Statistics of init and dropout (standard-error tolerances), and combinator algebra."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_core.testing import standard_error

Z = 4.0  # tolerance in standard errors


def normal(seed, shape):
    """Test inputs from numpy (no XLA compile per shape)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _assert_standard_normal(w, scale=1.0):
    w = np.asarray(w, np.float64).ravel() / scale
    n = w.size
    assert abs(w.mean()) < Z / math.sqrt(n), (w.mean(), n)
    # Var of the sample variance of N(0, 1) is 2 / (n - 1).
    assert abs(w.var(ddof=1) - 1.0) < Z * math.sqrt(2.0 / (n - 1)), (w.var(), n)


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_raw_weight_distributions(param):
    dense = L.Dense(512, W_std=1.7, b_std=0.3, parameterization=param)
    _, p = dense.init(jax.random.key(0), (2, 64))
    conv = L.Conv(64, (3, 3), W_std=1.7, b_std=0.3, parameterization=param)
    _, q = conv.init(jax.random.key(1), (1, 5, 5, 16))
    assert q["W"].shape == (3, 3, 16, 64) and q["b"].shape == (64,)
    ntk = param == "ntk"
    _assert_standard_normal(p["W"], 1.0 if ntk else 1.7 / math.sqrt(64))
    _assert_standard_normal(q["W"], 1.0 if ntk else 1.7 / math.sqrt(9 * 16))
    _assert_standard_normal(np.concatenate([p["b"], q["b"]]), 1.0 if ntk else 0.3)


def test_attention_raw_weights_are_standard_normal_and_independent():
    layer = L.GlobalSelfAttention(
        64, 32, 16, 4, linear_scaling=False, b_std=0.1, pos_emb_type="CONCAT"
    )
    _, p = layer.init(jax.random.key(2), (2, 7, 24))
    assert set(p) == {"W_query", "W_key", "W_value", "W_out", "b", "pos_emb"}
    assert p["W_query"].shape == p["W_key"].shape == (4, 48, 32)
    for name, w in p.items():
        _assert_standard_normal(w) if w.size > 100 else None
    c = np.corrcoef(np.asarray(p["W_query"]).ravel(), np.asarray(p["W_key"]).ravel())[0, 1]
    assert abs(c) < Z / math.sqrt(p["W_key"].size)
    tied = L.GlobalSelfAttention(8, 4, 4, 2).init(jax.random.key(0), (1, 3, 5))[1]
    assert "W_query" not in tied


def _check_second_moment(y, target):
    """``mean(y**2)`` over output channels against its target within Z standard errors."""
    sq = np.asarray(y, np.float64) ** 2
    mean, se = sq.mean(), standard_error(sq)
    assert abs(mean - target) < Z * se, (mean, target, se)
    # The tolerance is tight enough to tell a wrong scale by 10% apart.
    assert Z * se < 0.1 * target


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_output_variance_at_width(param):
    w_std, b_std = 1.7, 0.3
    x = normal(3, (1, 6, 5)) * np.arange(1.0, 6.0, dtype=np.float32)[None, None, :]
    dense = L.Dense(8192, W_std=w_std, b_std=b_std, parameterization=param)
    _, p = dense.init(jax.random.key(4), (1, 5))
    y = np.asarray(dense.apply(p, x[:, 2]))
    _check_second_moment(y[0], w_std**2 * float(np.mean(x[0, 2] ** 2)) + b_std**2)

    conv = L.Conv(8192, (3,), W_std=w_std, b_std=b_std, parameterization=param)
    _, q = conv.init(jax.random.key(5), x.shape)
    y = np.asarray(conv.apply(q, x))
    for pos in range(y.shape[1]):
        target = w_std**2 * float(np.mean(x[0, pos : pos + 3] ** 2)) + b_std**2
        _check_second_moment(y[0, pos], target)


@pytest.mark.parametrize("mechanism", ["SOFTMAX", "IDENTITY"])
def test_attention_output_variance_matches_the_wide_limit(mechanism):
    """With tied weights and 1/n_chan_key scaling the logits tend to
    ``W_query_std W_key_std x_s . x_t / d`` (Hron et al. 2020, Sec. 3), so given the
    weights a, the output channels are i.i.d. with variance
    ``W_out_std^2 W_value_std^2 |sum_s a_ts x_s|^2 / d``."""
    d, t = 8, 5
    n_heads, n_val, n_key, n_out = 16, 256, 2048, 4096
    qk, ov = (1.5, 0.8), (1.2, 0.9)
    x = normal(6, (1, t, d))
    layer = L.GlobalSelfAttention(
        n_out,
        n_key,
        n_val,
        n_heads,
        W_query_std=qk[0],
        W_key_std=qk[1],
        W_out_std=ov[0],
        W_value_std=ov[1],
        attention_mechanism=mechanism,
    )
    _, p = layer.init(jax.random.key(7), x.shape)
    y = np.asarray(layer.apply(p, x), np.float64)[0]  # (t, n_out)
    xs = np.asarray(x, np.float64)[0]
    logits = qk[0] * qk[1] * xs @ xs.T / d
    if mechanism == "SOFTMAX":
        a = np.exp(logits - logits.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
    else:
        a = logits
    target = (ov[0] * ov[1]) ** 2 * np.sum((a @ xs) ** 2, axis=-1) / d
    # Relative sd of each estimate: channels (2 / n_out) and the values' finite width
    # (2 / (n_heads n_val)) add up.
    rel_sd = math.sqrt(2 / n_out + 2 / (n_heads * n_val))
    got = np.mean(y**2, axis=-1)
    np.testing.assert_array_less(np.abs(got / target - 1), Z * rel_sd)


def test_dropout_keeps_the_mean_and_drops_at_rate():
    rate, n = 0.3, 100_000
    layer = L.Dropout(rate)
    y = np.asarray(layer.apply((), jnp.ones((1, n)), key=jax.random.key(8)), np.float64)
    dropped = np.mean(y == 0)
    assert abs(dropped - rate) < Z * math.sqrt(rate * (1 - rate) / n)
    assert abs(y.mean() - 1.0) < Z * math.sqrt(rate / (1 - rate) / n)
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / (1 - rate)], rtol=1e-6)
    assert layer.keep_rate == pytest.approx(0.7)


def test_dropout_needs_a_key_and_test_mode_is_identity():
    net = L.serial(L.Dense(3), L.Dropout(0.5))
    _, params = net.init(jax.random.key(0), (2, 4))
    x = jnp.ones((2, 4))
    with pytest.raises(
        ValueError, match=r"^Dropout\(rate=0.5.* at serial\[1\]: needs a random key"
    ):
        net.apply(params, x)
    test_net = L.serial(L.Dense(3), L.Dropout(0.5, mode="test"))
    np.testing.assert_array_equal(test_net.apply(params, x), L.Dense(3).apply(params[0], x))
    np.testing.assert_array_equal(L.Dropout(0.0).apply((), x), x)


# Combinators ----------------------------------------------------------------


def test_repeat_equals_serial_of_the_same_params():
    block = L.serial(L.Dense(6, b_std=0.1), L.Erf(), L.Dropout(0.2))
    rep = L.repeat(block, 3)
    _, stacked = rep.init(jax.random.key(0), (4, 6))
    assert jax.tree_util.tree_leaves(stacked)[0].shape[0] == 3
    stacked_np = jax.tree_util.tree_map(np.asarray, stacked)
    per_layer = tuple(jax.tree_util.tree_map(lambda a, i=i: a[i], stacked_np) for i in range(3))
    ser = L.serial(*[block] * 3)
    x = normal(1, (4, 6))
    key = jax.random.key(2)
    np.testing.assert_allclose(
        rep.apply(stacked, x, key=key), ser.apply(per_layer, x, key=key), rtol=1e-5, atol=1e-6
    )


def test_fan_out_parallel_fan_in_compute_what_they_say():
    x = normal(3, (2, 3, 4))
    a, b = L.Dense(5, b_std=0.2), L.Conv(5, (1,))
    for fan_in, combine in [
        (L.FanInSum(), lambda u, v: u + v),
        (L.FanInProd(), lambda u, v: u * v),
        (L.FanInConcat(), lambda u, v: jnp.concatenate([u, v], -1)),
        (L.FanInConcat(axis=1), lambda u, v: jnp.concatenate([u, v], 1)),
    ]:
        net = L.serial(L.Relu(), L.FanOut(2), L.parallel(a, L.serial(b, L.Tanh())), fan_in)
        shape, (_, _, (pa, (pb, _)), _) = net.init(jax.random.key(4), x.shape)
        h = jax.nn.relu(x)
        want = combine(a.apply(pa, h), jnp.tanh(b.apply(pb, h)))
        y = net.apply(net.init(jax.random.key(4), x.shape)[1], x)
        assert y.shape == tuple(shape) == want.shape
        np.testing.assert_allclose(y, want, rtol=1e-6)


def test_nested_combinators_and_serial_of_parallel_of_serial():
    inner = L.serial(L.Dense(4), L.Relu())
    net = L.serial(
        L.FanOut(3),
        L.parallel(
            inner,
            L.serial(L.FanOut(2), L.parallel(inner, L.Identity()), L.FanInConcat()),
            L.Dense(8),
        ),
        L.parallel(L.Dense(2), L.Dense(2), L.Dense(2)),
        L.FanInSum(),
    )
    shape, params = net.init(jax.random.key(5), (3, 4))
    assert shape == (3, 2) == net.output_shape((3, 4))
    assert net.apply(params, jnp.ones((3, 4))).shape == (3, 2)
    with pytest.raises(L.ShapeError, match=r"^parallel\(3 branches\) at serial\[1\]: .* 2 input"):
        L.serial(L.FanOut(2), net.layers[1]).init(jax.random.key(0), (3, 4))
