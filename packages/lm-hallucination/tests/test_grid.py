"""The size x epochs grid: one run per cell, each on its own schedule, resumable."""

import json
import math

import pytest
from widelab_core import cli
from widelab_lm_hallucination import (
    GridPoint,
    aggregate_grid,
    cell_outputs,
    hallucination_rate,
    load_run,
    rate_by,
    read_metrics,
    wilson_interval,
)
from widelab_lm_hallucination import grid as grid_mod


def _gp(rate, seed=0, n=40, d=16, ep=4.0):
    return GridPoint(d, 100, ep, 10, 1e6, rate, 0.0, 1.0, float("nan"), 1.0, seed, n, "")


def test_aggregate_grid_standard_errors():
    one = aggregate_grid([_gp(0.2)])[0]
    assert one["se_kind"] == "binomial"
    # Agresti-Coull: p~ = (8 + z^2/2) / (40 + z^2), se = sqrt(p~ (1 - p~) / (40 + z^2))
    z2 = 1.959963984540054**2
    p_t = (8 + z2 / 2) / (40 + z2)
    assert one["se"] == pytest.approx(math.sqrt(p_t * (1 - p_t) / (40 + z2)), rel=1e-9)
    assert (one["low"], one["high"]) == tuple(float(x) for x in wilson_interval(8, 40))
    rates = [0.1, 0.3, 0.2]
    rec = aggregate_grid([_gp(r, seed=s) for s, r in enumerate(rates)] + [_gp(0.5, ep=8.0)])
    assert [(r["epochs"], r["n_seeds"]) for r in rec] == [(4.0, 3), (8.0, 1)]
    assert rec[0]["rate"] == pytest.approx(0.2)
    # sample sd of (0.1, 0.3, 0.2) is 0.1; standard error 0.1 / sqrt(3)
    assert rec[0]["se"] == pytest.approx(0.1 / math.sqrt(3), rel=1e-9)
    assert rec[0]["se_kind"] == "seeds"
    # the interval covers mean -/+ z se_seeds and the pooled Wilson interval
    low, high = (float(x) for x in wilson_interval(24, 120))
    half = 1.959963984540054 * 0.1 / math.sqrt(3)
    assert rec[0]["low"] == pytest.approx(min(low, 0.2 - half))
    assert rec[0]["high"] == pytest.approx(max(high, 0.2 + half))


_ARGS = [
    "lm", "study", "--entities", "12", "--seed", "3", "--unseen-fraction", "0.2",
    "--sizes", "16", "--epochs", "2,6", "--batch-size", "8", "--lr", "1e-2",
    "--warmup", "2",
]  # fmt: skip


def test_study_cells_are_own_runs_and_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "study"
    assert cli.main([*_ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    study = json.loads((out / "study.json").read_text())
    cells = study["cells"]
    assert [c["epochs"] for c in cells] == [2.0, 6.0]
    for c in cells:
        run = load_run(c["run_dir"])
        # each cell's schedule ends where the cell ends (not a snapshot of a longer run)
        assert run.tc.steps == run.step == c["steps"]
        assert read_metrics(f"{c['run_dir']}/metrics.jsonl")[-1]["step"] == c["steps"]
        # the recorded rate is the rate of the cell's final checkpoint
        seen = list(run.split.train.queries())
        est, _ = hallucination_rate(run.cfg, run.params, run.tok, run.split.full, seen, n_boot=200)
        qs, flags = cell_outputs(c["run_dir"])
        assert qs == seen and flags.mean() == pytest.approx(est.rate)
        low, high = wilson_interval(int(flags.sum()), len(flags))
        assert (c["seen"], c["seen_low"], c["seen_high"]) == (est.rate, low, high)
        assert sum(r["n"] for r in rate_by(run.split.train, qs, flags)) == len(qs)
    # steps scale with epochs: 6 epochs take three times the steps of 2 (rounded up)
    assert cells[1]["steps"] == pytest.approx(3 * cells[0]["steps"], abs=2)
    agg = study["aggregate"]
    assert [a["rate"] for a in agg] == [c["seen"] for c in cells]
    assert f"{agg[0]['se']:.4f}" in printed
    # a second run trains nothing: finished cells are read back
    calls = []
    real_train = grid_mod.train
    monkeypatch.setattr(grid_mod, "train", lambda *a, **k: calls.append(a) or real_train(*a, **k))
    assert cli.main([*_ARGS, "--out", str(out)]) == 0
    assert calls == [] and json.loads((out / "study.json").read_text()) == study
    # a cell trained but not evaluated resumes from its final checkpoint: no new steps
    metrics = (out / cells[0]["run_dir"] / "metrics.jsonl").read_text()
    (out / cells[0]["run_dir"] / "result.json").unlink()
    assert cli.main([*_ARGS, "--out", str(out)]) == 0
    assert len(calls) == 1 and json.loads((out / "study.json").read_text()) == study
    assert (out / cells[0]["run_dir"] / "metrics.jsonl").read_text() == metrics
    # other settings for an existing cell: refused, naming the setting
    capsys.readouterr()
    assert cli.main([*_ARGS[:-4], "--lr", "2e-2", "--warmup", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "train.lr" in err and err.count("\n") == 1
