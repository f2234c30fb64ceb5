"""The transformer built from core layers: shapes, causality, parameter counts."""

import jax
import numpy as np
import pytest
from widelab_lm_hallucination import (
    LMConfig,
    flops_per_token,
    hidden_states,
    init_lm,
    logits_fn,
    next_token_loss,
    param_counts,
    size_family,
    transformer,
)


@pytest.mark.parametrize("n_layers", [1, 5])  # unrolled serial and compiled repeat
def test_counts_match_closed_form(n_layers):
    cfg = LMConfig(vocab_size=23, d_model=32, n_layers=n_layers, n_heads=4, seq_len=16)
    c = param_counts(cfg)
    d, v, t = 32, 23, 16
    # per block: Q, K, V, O projections (4 d^2) and the MLP (2 * 4 d^2), no biases
    assert c["non_embedding"] == 12 * n_layers * d * d
    assert c["total"] == c["non_embedding"] + (v + t) * d + d * v
    assert flops_per_token(cfg) == 6 * (12 * n_layers * d * d + d * v) + 12 * n_layers * d * t


def test_causal_and_shapes():
    cfg = LMConfig(vocab_size=11, d_model=16, n_layers=2, n_heads=2, seq_len=12)
    params = init_lm(cfg, jax.random.key(0))
    x = jax.random.randint(jax.random.key(1), (3, 12), 0, 11)
    y = x.at[:, 7].set((x[:, 7] + 1) % 11)
    f = jax.jit(lambda p, t: logits_fn(cfg, p, t))
    lx, ly = f(params, x), f(params, y)
    assert lx.shape == (3, 12, 11)
    np.testing.assert_array_equal(lx[:, :7], ly[:, :7])  # the past ignores the future
    assert not np.allclose(lx[:, 7:], ly[:, 7:])
    h = jax.jit(lambda p, t: hidden_states(cfg, p, t))(params, x)
    assert h.shape == (3, 12, 16)
    np.testing.assert_allclose(h.mean(-1), 0.0, atol=1e-5)  # final LayerNorm
    # shorter sequences use the first positions
    np.testing.assert_allclose(f(params, x[:, :5]), lx[:, :5], rtol=1e-5, atol=1e-5)
    net = transformer(cfg)
    assert net.init(jax.random.key(0), (2, 12))[0] == (2, 12, 11)


def test_dropout_uses_the_key():
    cfg = LMConfig(vocab_size=11, d_model=16, n_layers=1, n_heads=2, seq_len=8, dropout=0.5)
    params = init_lm(cfg, jax.random.key(0))
    rows = jax.random.randint(jax.random.key(1), (2, 9), 1, 11)
    f = jax.jit(lambda p, r, k: next_token_loss(cfg, p, r, key=k))
    a, b = f(params, rows, jax.random.key(2)), f(params, rows, jax.random.key(2))
    c = f(params, rows, jax.random.key(3))
    assert a == b and a != c
    # without a key the network runs in evaluation mode (dropout off)
    g = jax.jit(lambda p, r: next_token_loss(cfg, p, r))
    ev = g(params, rows)
    assert ev != a and ev == g(params, rows)


def test_size_family_is_geometric():
    fam = size_family(4, vocab_size=30, d_min=16, growth=2.0)
    ds = [c.d_model for c in fam]
    assert ds == [16, 32, 64, 128]
    n = np.array([param_counts(c)["non_embedding"] for c in fam], float)
    np.testing.assert_allclose(n[1:] / n[:-1], 4.0)


def test_bad_configs():
    with pytest.raises(ValueError, match="divisible"):
        LMConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="seq_len must be positive"):
        LMConfig(vocab_size=10, seq_len=0)
    cfg = LMConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, seq_len=8)
    with pytest.raises(ValueError, match="exceeds max_len"):
        transformer(cfg).init(jax.random.key(0), (1, 9))
