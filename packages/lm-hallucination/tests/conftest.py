"""Shared fixtures: one tiny KG and one tiny LM trained on it (trained once per session)."""

import jax
import pytest
from widelab_lm_hallucination import (
    FactStream,
    LMConfig,
    Tokenizer,
    TrainConfig,
    encode_kg,
    make_kg,
    split_kg,
    train,
)


@pytest.fixture(scope="session")
def tiny_kg():
    return make_kg(12, seed=3)


@pytest.fixture(scope="session")
def tiny_lm(tiny_kg):
    """A 1-block, d=32 transformer trained to memorise the tiny KG (all facts seen)."""
    split = split_kg(tiny_kg, 0.0)
    tok = Tokenizer.fit(tiny_kg.triples)
    cfg = LMConfig(tok.vocab_size, d_model=32, n_layers=1, n_heads=2, seq_len=48)
    tc = TrainConfig(steps=240, batch_size=8, lr=1e-2, warmup=10, seed=0)
    stream = FactStream(encode_kg(tok, split.train), cfg.seq_len, tc.batch_size, tc.seed)
    res = train(cfg, tc, stream)
    return cfg, res.state.params, tok, split, res


@pytest.fixture
def key():
    return jax.random.key(0)
