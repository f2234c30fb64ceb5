"""Decoding, the hallucination rate, bootstrap intervals and pass@k."""

import itertools
import math

import numpy as np
import pytest
from widelab_lm_hallucination import (
    FactStream,
    KnowledgeGraph,
    LMConfig,
    Tokenizer,
    TrainConfig,
    UnknownTokenError,
    bootstrap_ci,
    decode_budget,
    encode_kg,
    evaluate_queries,
    generate,
    hallucination_rate,
    pass_at_k,
    train,
)


def test_bootstrap_interval_matches_normal_theory():
    rng = np.random.default_rng(0)
    x = rng.random(400) < 0.3
    lo, hi = bootstrap_ci(x, n_boot=4000, seed=1)
    se = x.std() / math.sqrt(x.size)
    # the percentile interval of a mean is ~ +-1.96 se; Monte Carlo error of the
    # quantiles with 4000 replicates is a few per cent of the width
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert lo < x.mean() < hi
    # duplicating every value inside its group must not shrink the interval:
    # the effective sample size is the number of groups (queries)
    lo2, hi2 = bootstrap_ci(
        np.repeat(x, 2), groups=np.repeat(np.arange(400), 2), n_boot=4000, seed=1
    )
    assert hi2 - lo2 == pytest.approx(hi - lo, rel=0.1)
    with pytest.raises(ValueError, match="no values"):
        bootstrap_ci(np.array([]))


def test_pass_at_k_against_enumeration():
    for n, c, k in [(5, 0, 1), (5, 2, 1), (5, 2, 3), (6, 3, 4), (4, 4, 2), (8, 1, 8)]:
        items = [1] * c + [0] * (n - c)
        subsets = list(itertools.combinations(range(n), k))
        exact = np.mean([any(items[i] for i in s) for s in subsets])
        assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_greedy_and_sampled_decoding(tiny_lm, key):
    cfg, params, tok, split, _ = tiny_lm
    qs = list(split.seen)[:6]
    g1, g2 = generate(cfg, params, tok, qs), generate(cfg, params, tok, qs)
    assert g1.objects == g2.objects and len(g1.objects) == 6
    s1 = generate(cfg, params, tok, qs, greedy=False, n_samples=3, key=key)
    s2 = generate(cfg, params, tok, qs, greedy=False, n_samples=3, key=key)
    assert s1.objects == s2.objects and len(s1.objects) == 18
    assert s1.queries[:3] == (qs[0],) * 3
    # a very low temperature reproduces greedy decoding
    cold = generate(cfg, params, tok, qs, greedy=False, temperature=1e-4, key=key)
    assert cold.objects == g1.objects
    # the generated tokens re-encode the objects after the prompt
    for i, (q, o) in enumerate(zip(g1.queries, g1.objects)):
        p = tok.encode_fact(*q)
        end = len(p) + len(o) + int(g1.finished[i])
        assert list(g1.tokens[i, : len(p)]) == p
        assert tok.decode_object(g1.tokens[i, len(p) : end])[0] == o
        assert np.all(g1.tokens[i, end:] == 0)


def test_rates_on_seen_and_sampled(tiny_lm, key):
    cfg, params, tok, split, _ = tiny_lm
    qs = list(split.seen)
    est, gen = hallucination_rate(
        cfg, params, tok, split.full, qs, greedy=False, n_samples=4, temperature=0.5, key=key
    )
    assert est.n == 4 * len(qs) and est.low <= est.rate <= est.high
    assert est.rate < 0.25  # memorised facts stay mostly right when sampled


def test_bad_queries(tiny_lm, key):
    cfg, params, tok, split, _ = tiny_lm
    s, r = split.seen[0]
    with pytest.raises(UnknownTokenError, match="unknown character"):
        generate(cfg, params, tok, [("Ω" + s, r)])
    with pytest.raises(UnknownTokenError, match="unknown relation"):
        generate(cfg, params, tok, [(s, "no such relation")])
    with pytest.raises(ValueError, match="needs a PRNG key"):
        generate(cfg, params, tok, [(s, r)], greedy=False)
    with pytest.raises(ValueError, match="context"):
        generate(cfg, params, tok, [(s * 20, r)])
    with pytest.raises(ValueError, match="no queries"):
        generate(cfg, params, tok, [])


LONG = (
    ("Ann", "studied at", "Massachusetts Institute of Technology"),
    ("Bo", "studied at", "California Institute of Technology"),
    ("Cy", "studied at", "Swiss Federal Institute of Technology"),
    ("Di", "studied at", "Royal Institute of Technology"),
)


@pytest.fixture(scope="module")
def long_name_lm():
    """A tiny LM that memorised four facts whose objects are 29-37 characters long."""
    kg = KnowledgeGraph.from_triples(LONG)
    tok = Tokenizer.fit(kg.triples)
    cfg = LMConfig(tok.vocab_size, d_model=32, n_layers=1, n_heads=2, seq_len=48)
    tc = TrainConfig(steps=150, batch_size=4, lr=1e-2, warmup=10)
    res = train(cfg, tc, FactStream(encode_kg(tok, kg), cfg.seq_len, tc.batch_size))
    return cfg, res.state.params, tok, kg


def test_long_multi_token_objects_decode_in_full(long_name_lm, key):
    cfg, params, tok, kg = long_name_lm
    qs = kg.queries()
    assert decode_budget(tok, kg) == len(LONG[0][2]) + 3
    # the generous default budget (the rest of the context) shows the names are memorised
    full = generate(cfg, params, tok, qs)
    assert list(full.objects) == [t[2] for t in LONG] and full.finished.all()
    est, gen = hallucination_rate(cfg, params, tok, kg, qs)
    assert est.rate == 0.0 and gen.objects == full.objects
    acc = evaluate_queries(cfg, params, tok, kg, qs, n_samples=2, ks=(1,), key=key)
    assert acc["accuracy"] == 1.0
    # an explicit budget shorter than the names leaves them unfinished: hallucinations
    short, _ = hallucination_rate(cfg, params, tok, kg, qs, max_new=24)
    assert short.rate == 1.0
    with pytest.raises(ValueError, match="max_new"):
        generate(cfg, params, tok, qs, max_new=0)
