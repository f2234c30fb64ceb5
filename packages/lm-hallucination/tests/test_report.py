"""The report section's figures (what ``report.json`` receives): numbers and structure."""

import json

import numpy as np
import pytest
from widelab_core.command import ReportContext, ReportSection
from widelab_lm_hallucination import (
    GridPoint,
    Tokenizer,
    TrainConfig,
    agresti_coull_se,
    auroc_standard_error,
    param_counts,
    size_family,
    split_kg,
    wilson_interval,
)
from widelab_lm_hallucination.report import (
    _auroc_bars,
    _breakdown,
    _detector_figures,
    _full_extras,
    _grid_table,
)


def _tables(sec):
    return [b[1] for b in sec.blocks if b[0] == "table"]


def _value(sec, name):
    d = sec.details[name]
    return d["value"], d["se"]


def test_grid_table_and_metrics_follow_the_cells():
    pts = [
        GridPoint(d, 10 * d, ep, 5, 1e3, r, 0.0, 1.0, float("nan"), 1.0, s, 50, "")
        for d, ep, s, r in [
            (16, 2.0, 0, 0.8),
            (16, 8.0, 0, 0.5),
            (32, 2.0, 0, 0.6),
            (32, 8.0, 0, 0.3),
            (32, 8.0, 1, 0.1),
        ]
    ]
    sec = ReportSection("t")
    _grid_table(sec, pts)
    header, rows, _ = _tables(sec)[0]
    assert [r[1:4] for r in rows] == [
        [16, 160, 2.0],
        [16, 160, 8.0],
        [32, 320, 2.0],
        [32, 320, 8.0],
    ]
    rate, se = _value(sec, "lm seen rate against size at 8 epochs")
    assert rate == pytest.approx([0.5, 0.2])
    # one seed: Agresti-Coull over 50 queries; two seeds: sd(0.3, 0.1) / sqrt(2) = 0.1
    assert se == pytest.approx([float(agresti_coull_se(25, 50)), 0.1])
    low = _value(sec, "lm seen rate against size at 8 epochs (95% interval low)")[0]
    high = _value(sec, "lm seen rate against size at 8 epochs (95% interval high)")[0]
    assert [low[0], high[0]] == pytest.approx([float(x) for x in wilson_interval(25, 50)])
    assert high[1] == pytest.approx(0.2 + 1.959963984540054 * 0.1)
    assert [r[header.index("low")] for r in rows] == pytest.approx(
        [float(wilson_interval(round(r * 50), 50)[0]) for r in (0.8, 0.5, 0.6)] + [low[1]]
    )
    assert _value(sec, "lm sizes (non-embedding parameters)")[0] == [160, 320]
    rate, se = _value(sec, "lm seen rate of the largest model against epochs")
    assert rate == pytest.approx([0.6, 0.2]) and _value(sec, "lm epochs of the grid")[0] == [2, 8]
    assert rows[0][header.index("unseen rate")] != rows[0][header.index("unseen rate")]  # NaN
    json.dumps(sec.details, allow_nan=False)


def test_breakdown_rates_match_the_flags(tiny_kg):
    qs = tiny_kg.queries()
    flags = np.random.default_rng(0).random(len(qs)) < 0.4
    sec = ReportSection("t")
    _breakdown(sec, tiny_kg, qs, flags)
    _, rows, _ = _tables(sec)[0]
    for by in ("relation", "subject", "object"):
        part = [r for r in rows if r[0] == by]
        assert sum(r[2] for r in part) == len(qs)  # every query in exactly one group
        # the groups' rates average back to the overall rate
        assert sum(r[2] * r[3] for r in part) == pytest.approx(flags.sum())
        for _, _, n, rate, se, low, high in part:
            k = round(rate * n)
            assert se == pytest.approx(float(agresti_coull_se(k, n)))
            assert (low, high) == pytest.approx([float(x) for x in wilson_interval(k, n)])
    for r in (r for r in rows if r[0] == "relation"):
        assert r[3] == pytest.approx(np.mean([f for q, f in zip(qs, flags) if q[1] == r[1]]))
    val, se = _value(sec, "lm seen rate by object frequency (low to high)")
    assert val == [r[3] for r in rows if r[0] == "object"] and len(se) == len(val)


def test_detector_error_bars_are_the_bootstrap_interval(monkeypatch):
    import matplotlib.axes

    nan = float("nan")
    base = {"task": "sentence", "mode": "frozen", "width": 8}
    rows = [
        dict(base, d_model=16, auroc=0.7, auroc_low=0.6, auroc_high=0.75, auroc_se=0.04),
        dict(base, d_model=32, auroc=0.8, auroc_low=nan, auroc_high=nan, auroc_se=0.05),
    ]
    assert _auroc_bars(rows[0]) == pytest.approx((0.1, 0.05))
    assert _auroc_bars(rows[1]) == pytest.approx((1.96 * 0.05, 1.96 * 0.05))
    seen = []
    real = matplotlib.axes.Axes.errorbar

    def spy(self, x, y, yerr=None, **kw):
        seen.append(np.asarray(yerr))
        return real(self, x, y, yerr=yerr, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", spy)
    sec = ReportSection("t")
    _detector_figures(sec, rows, {16: 100, 32: 400})
    assert len(seen) == 1  # one detector, two LM sizes: rows are (below, above)
    np.testing.assert_allclose(seen[0], [[0.1, 0.098], [0.05, 0.098]])
    name = "lm detector AUROC against LM size (sentence head (frozen))"
    assert _value(sec, name) == ([0.7, 0.8], [0.04, 0.05])
    low = sec.details[f"{name} (95% bootstrap low)"]["value"]
    high = sec.details[f"{name} (95% bootstrap high)"]["value"]
    assert low[0] == 0.6 and high[0] == 0.75 and low[1] is None and high[1] is None


@pytest.mark.slow
def test_full_extras_figures(tiny_kg):
    split = split_kg(tiny_kg, 0.2, seed=0)
    tok = Tokenizer.fit(tiny_kg.triples)
    sizes = size_family(1, tok.vocab_size, d_min=16, n_layers=1, seq_len=48)
    sec = ReportSection("t")
    tc = TrainConfig(batch_size=8, lr=1e-2, warmup=2)
    # short detector training: this checks the figures' bookkeeping; detector quality is
    # tested in test_detectors.py
    _full_extras(
        sec,
        ReportContext(),
        split,
        tok,
        sizes,
        tc,
        epochs=2,
        rest_steps=2,
        widths=(32,),
        det_steps=20,
        finetune_steps=5,
    )
    json.dumps(sec.details, allow_nan=False)  # report.json takes them as they are
    header, rows, _ = _tables(sec)[0]
    col = {h: i for i, h in enumerate(header)}
    # one LM x (sentence head, token head, object NLL, token entropy)
    assert [r[col["mode"]] for r in rows] == ["frozen", "frozen", "object NLL", "token entropy"]
    for r in rows:
        auc, prev, n, se = r[col["auroc"]], r[col["prevalence"]], r[col["n"]], r[col["auroc_se"]]
        n_pos = round(prev * n) if prev == prev else 0
        if auc == auc and 0 < n_pos < n:  # the Hanley-McNeil standard error of that AUROC
            assert se == pytest.approx(auroc_standard_error(auc, n_pos, n - n_pos))
        else:
            assert se != se
    for _, trows, _ in _tables(sec)[:2]:  # both detector tables: the bootstrap interval
        for r in trows:
            auc, low, high = r[col["auroc"]], r[col["auroc_low"]], r[col["auroc_high"]]
            if auc == auc:
                assert 0.0 <= low <= auc <= high <= 1.0
            else:
                assert low != low and high != high
    for r in rows[2:]:  # per LM, both likelihood scores rank the same held-out outputs
        assert (r[col["prevalence"]], r[col["n"]]) == (
            rows[2][col["prevalence"]],
            rows[2][col["n"]],
        )
    auc, se = _value(sec, "lm detector AUROC against LM size (object NLL)")
    row = rows[2]
    assert auc == [row[col["auroc"]] if row[col["auroc"]] == row[col["auroc"]] else None]
    assert len(se) == 1
    sizes_value = _value(sec, "lm detector LM sizes (non-embedding parameters)")[0]
    assert sizes_value == [param_counts(sizes[0])["non_embedding"]]
    assert sum(b[0] == "figure" for b in sec.blocks) == 1
    # the validation budget (when the held-out outputs hold both classes): checking
    # nothing accepts every output, checking all rejects every hallucination
    for _, brows, _ in (t for t in _tables(sec) if t[0][0] == "share checked"):
        assert brows[0][0] == 0.0 and brows[0][1] == pytest.approx(brows[0][2])
        assert brows[-1][0] == 1.0 and brows[-1][1:] == [1.0, 1.0]
    # ReST-EM: one record per iteration, rates are shares
    rh, rrows, _ = _tables(sec)[-1]
    assert len(rrows) >= 2
    for r in rrows:
        for h, v in zip(rh, r):
            if "rate" in h:
                assert 0.0 <= v <= 1.0
