"""Scaling studies: compute fits and the Chinchilla comparison; a tiny end-to-end study."""

import math

import numpy as np
import pytest
from widelab_lm_hallucination import (
    LMConfig,
    StudyPoint,
    Tokenizer,
    TrainConfig,
    agresti_coull_se,
    chinchilla_comparison,
    chinchilla_compute,
    compute_for_rate,
    fit_rate_vs_compute,
    hallucination_rate,
    is_hallucination,
    split_kg,
    studies,
    train_with_evals,
    wilson_interval,
)
from widelab_lm_hallucination.studies import rate_table


def _pt(c, r):
    return StudyPoint(16, 100, 1.0, 1, c, r, r, r, float("nan"))


def test_fit_recovers_power_law_on_frontier():
    # rate = 10 * C^-0.5 on the frontier, plus dominated points that must be ignored
    pts = [_pt(c, 10 * c**-0.5) for c in (1e2, 1e4, 1e6)] + [_pt(1e5, 0.9), _pt(1e7, 0.5)]
    fit = fit_rate_vs_compute(pts)
    assert fit.slope == pytest.approx(-0.5, abs=1e-9)
    assert fit.rate(1e4) == pytest.approx(0.1, rel=1e-9)
    assert compute_for_rate(fit, 0.05) == pytest.approx(4e4, rel=1e-9)
    assert [c for c, _ in fit.frontier] == [1e2, 1e4, 1e6]
    with pytest.raises(ValueError, match="two frontier points"):
        fit_rate_vs_compute([_pt(1.0, 0.5), _pt(2.0, 0.6)])


def test_chinchilla_allocation():
    ch = chinchilla_compute(2e10)  # 20B tokens -> 1B parameters (Hoffmann et al. 2022)
    assert ch["n_params"] == pytest.approx(1e9)
    assert ch["compute"] == pytest.approx(6 * 1e9 * 2e10)
    assert math.isinf(
        compute_for_rate(
            fit_rate_vs_compute([_pt(1, 0.5), _pt(2, 0.4)]).__class__(0.0, 0.1, ()), 0.05
        )
    )


def test_chinchilla_comparison_says_when_it_means_nothing():
    # rate = 0.5 (C / 1e18)^-1/2: 5% at C = 1e20
    fit = fit_rate_vs_compute([_pt(c, 0.5 * (c / 1e18) ** -0.5) for c in (1e18, 1e19)])
    ok = chinchilla_comparison(fit, tokens=2e10, measured=2e19)  # N = 1e9, C = 1.2e20
    assert ok["meaningful"] and ok["reason"] == ""
    assert ok["ratio"] == pytest.approx(1e20 / 1.2e20, rel=1e-6)
    tiny = chinchilla_comparison(fit, tokens=1.6e3, measured=1e19)
    assert not tiny["meaningful"] and math.isnan(tiny["ratio"])
    assert "80 parameters" in tiny["reason"]
    far = chinchilla_comparison(fit, tokens=2e10, measured=1e18)
    assert not far["meaningful"] and "ten times beyond" in far["reason"]


def test_train_with_evals_reports_each_epoch_mark(tiny_kg):
    split = split_kg(tiny_kg, 0.2, seed=0)
    tok = Tokenizer.fit(tiny_kg.triples)
    cfg = LMConfig(tok.vocab_size, d_model=16, n_layers=1, n_heads=1, seq_len=48)
    pts, res = train_with_evals(
        cfg, TrainConfig(batch_size=8, lr=1e-2, warmup=5), split, tok, (1, 3)
    )
    assert len(pts) == 2 and pts[0].epochs >= 1 and pts[1].epochs >= 3
    assert pts[1].steps == res.state.step > pts[0].steps
    # compute is linear in steps
    assert pts[1].compute / pts[0].compute == pytest.approx(pts[1].steps / pts[0].steps)
    # the last point is the rate of the final parameters (not of a stale or freed copy),
    # with the Wilson interval and Agresti-Coull se of its binomial count
    seen = split.train.queries()
    _, gen = hallucination_rate(cfg, res.state.params, tok, split.full, seen)
    flags = is_hallucination(split.full, gen.queries, gen.objects, gen.finished)
    k, n = int(flags.sum()), len(seen)
    low, high = wilson_interval(k, n)
    assert (pts[-1].seen, pts[-1].seen_low, pts[-1].seen_high) == (k / n, low, high)
    assert (pts[-1].seen_se, pts[-1].n_seen) == (agresti_coull_se(k, n), n)
    un, _ = hallucination_rate(cfg, res.state.params, tok, split.full, list(split.unseen))
    assert pts[-1].unseen == un.rate
    # after 2 steps no object is right: rate 1, where the Wald se sqrt(p (1 - p) / n) and
    # the old query bootstrap interval [1, 1] have no width; the Wilson interval is
    # [n / (n + z^2), 1] and the Agresti-Coull se sqrt(pt (1 - pt) / (n + z^2)) with
    # pt = (n + z^2 / 2) / (n + z^2) (closed forms, z = 1.959964)
    z2 = 1.959963984540054**2
    pt = (n + z2 / 2) / (n + z2)
    assert pts[0].steps == 2 and pts[0].seen == 1.0 and pts[0].seen_high == 1.0
    assert pts[0].seen_low == pytest.approx(n / (n + z2), rel=1e-12)
    assert pts[0].seen_se == pytest.approx(math.sqrt(pt * (1 - pt) / (n + z2)), rel=1e-12)
    assert rate_table(pts)[0][4:8] == [1.0, pts[0].seen_se, pts[0].seen_low, 1.0]


def test_a_study_point_at_rate_zero_has_a_positive_se_and_width(tiny_kg, monkeypatch):
    # every greedy output counted right (the model itself is not the point here): the
    # point must carry the Wilson interval [0, z^2 / (n + z^2)] and a positive se
    monkeypatch.setattr(studies, "is_hallucination", lambda kg, q, o, f: np.zeros(len(q), bool))
    split = split_kg(tiny_kg, 0.2, seed=0)
    tok = Tokenizer.fit(tiny_kg.triples)
    cfg = LMConfig(tok.vocab_size, d_model=16, n_layers=1, n_heads=1, seq_len=48)
    tc = TrainConfig(batch_size=8, lr=1e-2, warmup=5)
    (pt,), _ = train_with_evals(cfg, tc, split, tok, (1,), max_queries=5)
    z2 = 1.959963984540054**2
    assert (pt.seen, pt.seen_low, pt.n_seen) == (0.0, 0.0, 5)
    assert pt.seen_high == pytest.approx(z2 / (5 + z2), rel=1e-12)
    ptilde = z2 / 2 / (5 + z2)
    assert pt.seen_se == pytest.approx(math.sqrt(ptilde * (1 - ptilde) / (5 + z2)), rel=1e-12)
