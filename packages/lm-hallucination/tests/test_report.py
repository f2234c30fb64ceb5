"""Smoke test of the full-mode report extras on tiny settings (detectors, budget, ReST-EM)."""

import pytest
from widelab_core.command import ReportContext, ReportSection
from widelab_lm_hallucination import Tokenizer, TrainConfig, size_family, split_kg
from widelab_lm_hallucination.report import _full_extras


@pytest.mark.slow
def test_full_extras_on_tiny_models(tiny_kg):
    split = split_kg(tiny_kg, 0.2, seed=0)
    tok = Tokenizer.fit(tiny_kg.triples)
    sizes = size_family(1, tok.vocab_size, d_min=16, n_layers=1, seq_len=48)
    sec = ReportSection("t")
    tc = TrainConfig(batch_size=8, lr=1e-2, warmup=2)
    _full_extras(sec, ReportContext(), split, tok, sizes, tc, epochs=2, rest_steps=2, widths=(32,))
    captions = [b[1][2] for b in sec.blocks if b[0] == "table"]
    assert any("against LM size" in c for c in captions)
    assert any("ReST-EM" in c for c in captions)
    rows = [b[1][1] for b in sec.blocks if b[0] == "table" and "LM size" in b[1][2]][0]
    # one LM x (sentence head, token head, object NLL, token entropy)
    assert [r[2] for r in rows] == ["frozen", "frozen", "object NLL", "token entropy"]
    for r in rows:  # AUC-PR, prevalence and AUROC are probabilities or NaN (one class)
        assert all(x != x or 0.0 <= x <= 1.0 for x in r[4:7])
