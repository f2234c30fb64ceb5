"""Conv, pooling and attention against direct numpy references; padding masks."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L

PADDINGS = ["VALID", "SAME", "CIRCULAR"]


def normal(seed, shape):
    """Test inputs from numpy (no XLA compile per shape)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def ref_pads(n, k, s, padding):
    """TensorFlow/XLA SAME rule: out = ceil(n / s), the low side gets floor(total / 2)."""
    if padding == "VALID":
        return 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def ref_windows(x, window, strides, padding):
    """Yield ``(output index, padded input, list of input indices in the window)``."""
    nsp = len(window)
    pads = [ref_pads(x.shape[1 + i], window[i], strides[i], padding) for i in range(nsp)]
    mode = "wrap" if padding == "CIRCULAR" else "constant"
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], mode=mode)
    out_sp = [(xp.shape[1 + i] - window[i]) // strides[i] + 1 for i in range(nsp)]
    return xp, out_sp, pads


def np_conv(x, W, strides, padding):
    nsp = W.ndim - 2
    xp, out_sp, _ = ref_windows(x, W.shape[:nsp], strides, padding)
    y = np.zeros((x.shape[0], *out_sp, W.shape[-1]))
    for o in np.ndindex(*out_sp):
        for f in np.ndindex(*W.shape[:nsp]):
            idx = tuple(o[i] * strides[i] + f[i] for i in range(nsp))
            y[(slice(None), *o)] += xp[(slice(None), *idx)] @ W[f]
    return y


CONV_CASES = [
    ((3,), (1,)),
    ((4,), (2,)),
    ((3, 2), (1, 1)),
    ((2, 3), (2, 3)),
]


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize(("filt", "strides"), CONV_CASES)
def test_conv_matches_numpy_reference(filt, strides, padding):
    param = "ntk" if len(filt) == 1 else "standard"
    spatial = (7,) if len(filt) == 1 else (5, 6)
    x = normal(0, (2, *spatial, 3)).astype(np.float64)
    layer = L.Conv(
        4, filt, strides=strides, padding=padding, W_std=1.3, b_std=0.4, parameterization=param
    )
    out_shape, params = layer.init(jax.random.key(1), x.shape)
    y = np.asarray(layer.apply(params, jnp.asarray(x, jnp.float32)), np.float64)
    W = np.asarray(params["W"], np.float64)
    b = np.asarray(params["b"], np.float64)
    ref = np_conv(x, W, strides, padding)
    if param == "ntk":
        ref = 1.3 / math.sqrt(3 * math.prod(filt)) * ref + 0.4 * b
    else:
        ref = ref + b
    assert y.shape == ref.shape == tuple(out_shape)
    np.testing.assert_allclose(y, ref, rtol=2e-5, atol=2e-5)


def np_pool(x, mask, window, strides, padding):
    """Window sums of unmasked entries, in-input unmasked counts and masked counts."""
    present = np.ones(x.shape[:-1] + (1,)) if mask is None else (~mask).astype(np.float64)
    xz = x * present
    sums = np_conv(
        xz, np.eye(x.shape[-1])[(None,) * len(window)] * np.ones((*window, 1, 1)), strides, padding
    )
    ones_w = np.ones((*window, 1, 1))
    n_present = np_conv(present, ones_w, strides, padding)
    masked = 1.0 - present
    n_masked = np_conv(masked, ones_w, strides, padding)
    return sums, n_present, n_masked


POOL_CASES = [((3,), (2,), (8,)), ((2, 3), (1, 2), (5, 6))]


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize(("window", "strides", "spatial"), POOL_CASES)
def test_pooling_matches_numpy_reference_with_and_without_mask(window, strides, spatial, padding):
    x = normal(2, (2, *spatial, 3)).astype(np.float64)
    mask = np.random.default_rng(3).random((2, *spatial, 1)) < 0.3
    xj = jnp.asarray(x, jnp.float32)
    size = math.prod(window)
    layers = {
        "sum": L.SumPool(window, strides, padding),
        "avg": L.AvgPool(window, strides, padding),
        "avg_edges": L.AvgPool(window, strides, padding, normalize_edges=True),
    }
    for m in (None, mask):
        sums, n_present, n_masked = np_pool(x, m, window, strides, padding)
        refs = {
            "sum": sums,
            "avg": sums / size if m is None else sums / np.maximum(size - n_masked, 1),
            "avg_edges": sums / np.maximum(n_present, 1),
        }
        for name, layer in layers.items():
            y, out_mask = layer.apply_masked((), xj, None if m is None else jnp.asarray(m), None)
            assert y.shape == tuple(layer.output_shape(x.shape))
            np.testing.assert_allclose(y, refs[name], rtol=2e-5, atol=2e-5, err_msg=name)
            if m is None:
                assert out_mask is None
                continue
            # The output mask is the mask at each window's centre.
            pads = [
                ref_pads(spatial[i], window[i], strides[i], padding) for i in range(len(window))
            ]
            centre = np.zeros(y.shape[:-1] + (1,), bool)
            for o in np.ndindex(*y.shape[1:-1]):
                c = tuple(
                    o[i] * strides[i] - pads[i][0] + (window[i] - 1) // 2
                    for i in range(len(window))
                )
                centre[(slice(None), *o)] = m[(slice(None), *c)]
            np.testing.assert_array_equal(out_mask, centre)


def test_pooling_small_closed_forms():
    x = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 6, 1)
    assert np.asarray(L.AvgPool((2,), strides=(2,)).apply((), x)).ravel().tolist() == [
        1.5,
        3.5,
        5.5,
    ]
    assert np.asarray(L.SumPool((3,), padding="SAME").apply((), x)).ravel().tolist() == [
        3,
        6,
        9,
        12,
        15,
        11,
    ]
    assert np.asarray(L.SumPool((3,), padding="CIRCULAR").apply((), x)).ravel().tolist() == [
        9,
        6,
        9,
        12,
        15,
        12,
    ]
    assert (
        np.asarray(L.AvgPool((2,), padding="SAME", normalize_edges=True).apply((), x)).ravel()[-1]
        == 6.0
    )
    assert np.asarray(L.AvgPool((2,), padding="SAME").apply((), x)).ravel()[-1] == 3.0
    g = np.arange(24.0, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_allclose(L.GlobalSumPool().apply((), g), g.sum(axis=(1, 2)))
    np.testing.assert_allclose(L.GlobalAvgPool().apply((), g), g.mean(axis=(1, 2)))


def test_global_pools_exclude_masked_positions():
    x = normal(0, (2, 5, 3))
    mask = np.array([[0, 0, 1, 0, 1], [1, 1, 1, 1, 1]], bool)[..., None]
    y, m = map(np.asarray, L.GlobalAvgPool().apply_masked((), x, mask, None))
    np.testing.assert_allclose(y[0], x[0, [0, 1, 3]].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(y[1], 0.0)
    np.testing.assert_array_equal(m.ravel(), [False, True])
    s = np.asarray(L.GlobalSumPool().apply_masked((), x, mask, None)[0])
    np.testing.assert_allclose(s[0], x[0, [0, 1, 3]].sum(0), rtol=1e-6)


# Attention ---------------------------------------------------------------


def np_attention(layer, params, x, mask=None):
    """Direct per-head implementation of the documented formula (float64)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    n, spatial, d = x.shape[0], x.shape[1:-1], x.shape[-1]
    t = math.prod(spatial)
    m = np.zeros((n, t), bool) if mask is None else np.asarray(mask).reshape(n, t)
    xk = xv = x.reshape(n, t, d)
    if layer.pos_emb_type != "NONE":
        e = np.broadcast_to(p["pos_emb"].reshape(1, t, -1), (n, t, p["pos_emb"].shape[-1]))
        e = np.where(m[..., None], 0.0, e) * layer.W_pos_emb_std
        xk = xk + e if layer.pos_emb_type == "SUM" else np.concatenate([xk, e], -1)
        if layer.val_pos_emb:
            xv = xk
    dk, dv = xk.shape[-1], xv.shape[-1]
    out = np.zeros((n, t, layer.n_chan_out))
    for b in range(n):
        heads = []
        for h in range(layer.n_heads):
            K = layer.W_key_std / np.sqrt(dk) * xk[b] @ p["W_key"][h]
            Wq = p["W_key"][h] if layer.linear_scaling else p["W_query"][h]
            Q = layer.W_query_std / np.sqrt(dk) * xk[b] @ Wq
            V = layer.W_value_std / np.sqrt(dv) * xv[b] @ p["W_value"][h]
            s = layer.n_chan_key if layer.linear_scaling else np.sqrt(layer.n_chan_key)
            G = Q @ K.T / s
            hidden = np.broadcast_to(m[b][None, :], (t, t)).copy()
            if layer.causal:
                hidden |= np.triu(np.ones((t, t), bool), 1)
            if layer.attention_mechanism == "SOFTMAX":
                G = np.where(hidden, -np.inf, G)
                A = np.exp(G - G.max(-1, keepdims=True))
                A = A / A.sum(-1, keepdims=True)
            else:
                A = np.where(hidden, 0.0, G)
            heads.append(A @ V)
        H = np.concatenate(heads, -1)
        out[b] = layer.W_out_std / np.sqrt(layer.n_heads * layer.n_chan_val) * H @ p["W_out"]
        if "b" in p:
            out[b] += layer.b_std * p["b"]
    return out.reshape(n, *spatial, layer.n_chan_out)


ATTENTION_CASES = [
    L.GlobalSelfAttention(5, 4, 3, 2, W_key_std=1.3, W_query_std=0.7, W_out_std=1.2),
    L.GlobalSelfAttention(
        5,
        4,
        3,
        3,
        linear_scaling=False,
        b_std=0.3,
        W_value_std=0.8,
        attention_mechanism="IDENTITY",
        pos_emb_type="SUM",
        val_pos_emb=True,
        W_pos_emb_std=0.5,
    ),
    L.GlobalSelfAttention(4, 6, 2, 2, pos_emb_type="CONCAT", n_chan_pos_emb=3, causal=True),
    L.GlobalSelfAttention(
        4,
        3,
        2,
        1,
        linear_scaling=False,
        pos_emb_type="CONCAT",
        val_pos_emb=True,
        attention_mechanism="IDENTITY",
        causal=True,
    ),
]


@pytest.mark.parametrize("layer", ATTENTION_CASES, ids=range(len(ATTENTION_CASES)))
def test_attention_matches_numpy_reference(layer):
    shape = (2, 3, 2, 4)
    x = normal(4, shape)
    mask = np.zeros(shape[:-1] + (1,), bool)
    mask[1, 2, :] = True
    mask[0, 0, 1] = True
    _, params = layer.init(jax.random.key(5), shape)
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64 = jnp.asarray(x, jnp.float64)

        @jax.jit
        def run(p, x, mask):
            return layer.apply_masked(p, x, None, None)[0], layer.apply_masked(p, x, mask, None)

        y, (ym, m_out) = run(p64, x64, mask)
    np.testing.assert_allclose(y, np_attention(layer, params, x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ym, np_attention(layer, params, x, mask), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(m_out, mask)


def test_attention_fully_masked_query_gives_bias_only():
    layer = L.GlobalSelfAttention(3, 2, 2, 1, b_std=0.5)
    _, params = layer.init(jax.random.key(0), (1, 4, 2))
    y = np.asarray(layer.apply(params, np.full((1, 4, 2), 7.0, np.float32), mask_constant=7.0))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[0], np.broadcast_to(0.5 * params["b"], (4, 3)), rtol=1e-6)


def test_causal_attention_ignores_the_future():
    layer = L.GlobalSelfAttention(4, 3, 3, 2, causal=True, linear_scaling=False)
    _, params = layer.init(jax.random.key(0), (1, 6, 3))
    x = normal(1, (1, 6, 3))
    x_changed = x.copy()
    x_changed[0, 4:] = 5.0
    y, y2 = np.asarray(layer.apply(params, x)), np.asarray(layer.apply(params, x_changed))
    np.testing.assert_allclose(y[0, :4], y2[0, :4], rtol=1e-6)
    assert not np.allclose(y[0, 4:], y2[0, 4:])


# Masking: a padded sequence gives the outputs of the truncated one -------------

C = -100.0  # mask constant


def _padded_batch(t_full=9, t_short=6, d=3):
    x = normal(7, (2, t_full, d))
    x[1, t_short:] = C
    return x, x[1:2, :t_short]


def test_padded_sequence_equals_truncated_sequence_through_a_network():
    net = L.serial(
        L.Dense(8, b_std=0.1),
        L.Relu(),
        L.Conv(8, (3,), padding="SAME", b_std=0.1),
        L.AvgPool((3,), padding="SAME", normalize_edges=True),
        L.LayerNorm(axis=(1, 2)),
        L.GlobalSelfAttention(8, 8, 8, 2, b_std=0.1, linear_scaling=False),
        L.Gelu(),
        L.FanOut(2),
        L.parallel(L.GlobalAvgPool(), L.GlobalSumPool()),
        L.FanInConcat(),
        L.Dense(2),
    )
    x, x_short = _padded_batch()
    _, params = net.init(jax.random.key(8), x.shape)

    @jax.jit
    def run(params, x, x_short):
        masked = net.apply(params, x, mask_constant=C)
        return masked, net.apply(params, x_short), net.apply(params, x)

    y, y_short, y_unmasked = map(np.asarray, run(params, x, x_short))
    np.testing.assert_allclose(y[1], y_short[0], rtol=1e-4, atol=1e-5)
    # Without the mask the padding does change the result (the test can fail).
    assert not np.allclose(y_unmasked[1], y_short[0], rtol=1e-3)


def test_padding_leaves_unpadded_positions_of_local_layers_and_attention():
    x, x_short = _padded_batch()
    t = x_short.shape[1]
    cases = [
        (L.Conv(4, (3,), padding="VALID"), t - 2),
        (L.SumPool((2,)), t - 1),
        (L.AvgPool((3,)), t - 2),
        (L.AvgPool((3,), padding="SAME", normalize_edges=True), t),
        (L.Conv(4, (3,), padding="SAME"), t),
        (L.LayerNorm(axis=(1, 2)), t),
        (L.GlobalSelfAttention(4, 3, 3, 2, pos_emb_type="SUM", attention_mechanism="IDENTITY"), t),
        (L.GlobalSelfAttention(4, 3, 3, 2, pos_emb_type="CONCAT"), t),
    ]
    layers = [layer for layer, _ in cases]

    @jax.jit
    def run(x, x_short):
        out = []
        for layer in layers:
            _, params = layer.init(jax.random.key(9), x.shape)
            p_short = params
            if isinstance(params, dict) and "pos_emb" in params:
                p_short = dict(params, pos_emb=params["pos_emb"][:, :t])
            out.append((layer.apply(params, x, mask_constant=C), layer.apply(p_short, x_short)))
        return out

    for (layer, keep), (y, y_short) in zip(
        cases, jax.tree_util.tree_map(np.asarray, run(x, x_short))
    ):
        np.testing.assert_allclose(
            y[1, :keep], y_short[0, :keep], rtol=1e-4, atol=1e-5, err_msg=layer.describe()
        )


def test_window_mask_propagates_through_strided_conv():
    x, _ = _padded_batch(t_full=10, t_short=5)
    layer = L.Conv(2, (3,), strides=(2,), padding="SAME")
    _, params = layer.init(jax.random.key(0), x.shape)
    mask = np.all(x == C, axis=-1, keepdims=True)
    out_mask = np.asarray(layer.apply_masked(params, x, mask, None)[1])
    # SAME with k=3, s=2 on 10 inputs pads (0, 1): output o is centred on input 2 * o + 1,
    # and inputs 5.. are padding.
    assert out_mask[1, :, 0].tolist() == [False, False, True, True, True]
    assert not out_mask[0].any()


def test_explicit_boolean_mask_broadcasts_over_branches():
    x = np.ones((2, 4, 3), np.float32)
    mask = np.zeros((2, 4, 1), bool)
    mask[0, 3] = True
    net = L.serial(L.FanOut(2), L.parallel(L.Identity(), L.Relu()), L.FanInSum(), L.GlobalAvgPool())
    _, params = net.init(jax.random.key(0), x.shape)
    y = np.asarray(
        net.apply(params, x * np.arange(1.0, 5.0, dtype=np.float32)[None, :, None], mask=mask)
    )
    np.testing.assert_allclose(y[0], np.full(3, 4.0))
    np.testing.assert_allclose(y[1], np.full(3, 5.0))


def test_itertools_reference_sanity():
    # The reference windows agree with an explicit listing for one small case.
    x = np.arange(5.0).reshape(1, 5, 1)
    xp, out_sp, pads = ref_windows(x, (2,), (2,), "SAME")
    assert pads == [(0, 1)] and out_sp == [3]
    assert list(itertools.chain(*xp[0, :, 0].reshape(-1, 2).tolist())) == [0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize(
    "pool",
    [L.AvgPool((2, 2)), L.SumPool((2, 2), padding="SAME"), L.AvgPool((3, 3), padding="CIRCULAR")],
    ids=["avg", "sum-same", "avg-circular"],
)
def test_pooling_is_reverse_differentiable_under_jit(pool):
    # Regression: a traced init value made reduce_window a generic reduction with no
    # transpose rule, so grad/jacrev through pooling failed inside jit.
    net = L.serial(L.Conv(3, (3, 3), padding="SAME"), pool, L.Flatten(), L.Dense(1))
    _, params = net.init(jax.random.key(0), (-1, 6, 6, 2))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 6, 2)), jnp.float32)
    grads = jax.jit(jax.grad(lambda p: net.apply(p, x).sum()))(params)
    eager = jax.grad(lambda p: net.apply(p, x).sum())(params)
    np.testing.assert_allclose(grads[0]["W"], eager[0]["W"], rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(grads[0]["W"]).sum()) > 0
