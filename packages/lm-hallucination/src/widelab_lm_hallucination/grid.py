"""The size x epochs study as a grid of independent, resumable runs.

Hron et al. (2024, Sec. 3) train each (model size, epochs) combination as its own run,
to the end of its own learning-rate schedule, so that a model trained for 8 epochs has
annealed its learning rate at epoch 8 instead of being a snapshot of a longer run.
:func:`run_cell` trains one such cell in its own run folder (the files of
:mod:`~widelab_lm_hallucination.runs` plus ``result.json``); :func:`size_epoch_grid`
runs or resumes every cell of a grid under one study folder and :func:`aggregate_grid`
reduces the cells to the rate against size and epochs with standard errors.

A cell folder is named ``d{d_model}-L{layers}-ep{epochs}-f{fraction}-s{seed}``. Running
the study again skips finished cells (their ``result.json``), resumes interrupted ones
from their checkpoint and refuses a cell whose recorded settings differ (see
:func:`~widelab_lm_hallucination.resume_run`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np
from widelab_core.command import atomic_write

from .corpus import FactStream, Tokenizer, encode_kg
from .hallucination import hallucination_rate, is_hallucination
from .intervals import agresti_coull_se, wilson_interval
from .kg import KGSplit
from .model import LMConfig, flops_per_token, param_counts
from .runs import RUN_JSON, resume_run, save_run
from .train import RunFormatError, TrainConfig, train

RESULT = "result.json"
STUDY = "study.json"


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """The evaluation of one finished grid cell.

    Attributes:
        d_model: width; n_params: non-embedding parameters; epochs: epochs of the
        cell's schedule; steps: its optimizer steps; compute: training FLOPs
        (``flops_per_token * tokens``); seen / seen_low / seen_high: greedy rate on
        the trained queries and its 95% Wilson score interval
        (:func:`~widelab_lm_hallucination.wilson_interval`; one output per query, so
        the count is binomial); unseen: greedy rate on
        held-out queries (NaN when there are none); fraction: share of the training
        graph's queries used; seed: training seed; n_seen: queries evaluated;
        run_dir: the cell's folder.
    """

    d_model: int
    n_params: int
    epochs: float
    steps: int
    compute: float
    seen: float
    seen_low: float
    seen_high: float
    unseen: float
    fraction: float
    seed: int
    n_seen: int
    run_dir: str


def cell_name(cfg: LMConfig, epochs: float, fraction: float, seed: int) -> str:
    """Folder name of a grid cell, e.g. ``d16-L1-ep8-f1-s0``."""
    return f"d{cfg.d_model}-L{cfg.n_layers}-ep{epochs:g}-f{fraction:g}-s{seed}"


def cell_steps(stream: FactStream, epochs: float) -> int:
    """Optimizer steps for ``epochs`` passes over ``stream`` (at least one)."""
    rows = len(stream.epoch_rows(0))
    return max(1, math.ceil(epochs * rows / stream.batch_size))


def run_cell(
    run_dir: str | Path,
    cfg: LMConfig,
    tc: TrainConfig,
    split: KGSplit,
    tok: Tokenizer,
    epochs: float,
    *,
    fraction: float = 1.0,
    data: dict | None = None,
    max_queries: int | None = None,
) -> GridPoint:
    """Train one (size, epochs) cell to the end of its own schedule and evaluate it.

    The schedule (``tc.steps``) spans exactly ``epochs`` passes over the cell's
    training facts; ``tc.seed`` seeds parameters, data order and the data fraction.
    A finished cell (``result.json`` present) is read back, not retrained; an
    interrupted one resumes from its checkpoint.

    Args:
        run_dir: the cell's folder (created).
        cfg, tc: model and optimisation settings (``tc.steps`` is replaced).
        split: the graph and its seen/unseen split.
        tok: tokenizer fitted on the whole graph.
        epochs: epochs of the schedule (> 0).
        fraction: share of the training queries kept (data-fraction study); the
            cell's ``unseen.tsv`` then lists every fact it did not train on.
        data: how the graph was made (recorded and compared on resume).
        max_queries: evaluate at most this many seen and unseen queries.

    Returns:
        The cell's :class:`GridPoint`.

    Raises:
        ValueError: ``epochs`` or ``fraction`` out of range, or the folder holds a run
            with other settings (each differing setting listed).

    Example:
        >>> # p = run_cell("study/d16-L1-ep8-f1-s0", cfg, tc, split, tok, 8)
        >>> # p.seen, p.seen_low, p.seen_high
    """
    if not (epochs > 0 and math.isfinite(epochs)):
        raise ValueError(f"run_cell: epochs must be a finite number > 0, got {epochs}")
    run_dir = Path(run_dir)
    train_kg = split.train if fraction >= 1.0 else split.train.fraction(fraction, seed=tc.seed)
    stream = FactStream(encode_kg(tok, train_kg), cfg.seq_len, tc.batch_size, tc.seed)
    tc = dataclasses.replace(tc, steps=cell_steps(stream, epochs))
    data = {**(data or {}), "fraction": fraction, "epochs": epochs, "max_queries": max_queries}
    if (run_dir / RUN_JSON).exists():
        resume_run(run_dir, cfg, tc, data)
        if (run_dir / RESULT).exists():
            return read_cell(run_dir)
    else:
        cell_split = KGSplit(split.full, train_kg, tuple(train_kg.queries()), split.unseen)
        save_run(run_dir, cfg, tc, tok, cell_split, data)
    res = train(cfg, tc, stream, run_dir=run_dir, resume=True)
    params = res.state.params
    seen = train_kg.queries()[:max_queries]
    unseen = list(split.unseen[:max_queries] if max_queries else split.unseen)
    est, gen = hallucination_rate(cfg, params, tok, split.full, seen, n_boot=1)
    flags = is_hallucination(split.full, gen.queries, gen.objects, gen.finished)
    low, high = wilson_interval(int(flags.sum()), len(flags))
    un = float("nan")
    if unseen:
        un = hallucination_rate(cfg, params, tok, split.full, unseen, n_boot=10)[0].rate
    point = GridPoint(
        cfg.d_model,
        param_counts(cfg)["non_embedding"],
        float(epochs),
        res.state.step,
        flops_per_token(cfg) * res.state.step * tc.batch_size * cfg.seq_len,
        est.rate,
        float(low),
        float(high),
        un,
        float(fraction),
        tc.seed,
        len(seen),
        str(run_dir),
    )
    record = dataclasses.asdict(point)
    record["unseen"] = None if math.isnan(un) else un
    record["queries"] = [list(q) for q in seen]
    record["hallucinated"] = [bool(x) for x in flags]
    atomic_write(run_dir / RESULT, json.dumps(record, indent=1))
    return point


def read_cell(run_dir: str | Path) -> GridPoint:
    """The :class:`GridPoint` recorded in a finished cell's ``result.json``.

    Raises:
        RunFormatError: the file is not a cell result (file named).
    """
    rec = _read_result(run_dir)
    fields = {f.name for f in dataclasses.fields(GridPoint)}
    vals = {k: rec[k] for k in fields}
    vals["unseen"] = float("nan") if vals["unseen"] is None else vals["unseen"]
    vals["run_dir"] = str(run_dir)
    return GridPoint(**vals)


def cell_outputs(run_dir: str | Path) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The evaluated seen queries of a finished cell and whether each hallucinated
    (the input of :func:`~widelab_lm_hallucination.rate_by`)."""
    rec = _read_result(run_dir)
    return [tuple(q) for q in rec["queries"]], np.asarray(rec["hallucinated"], bool)


def _read_result(run_dir) -> dict:
    path = Path(run_dir) / RESULT
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFormatError(f"{path}: not a cell result ({e})") from e
    missing = [f.name for f in dataclasses.fields(GridPoint) if f.name not in rec]
    missing += [k for k in ("queries", "hallucinated") if k not in rec]
    if missing:
        raise RunFormatError(f"{path}: not a cell result (no {', '.join(missing)})")
    return rec


def size_epoch_grid(
    out_dir: str | Path,
    split: KGSplit,
    tok: Tokenizer,
    configs: Sequence[LMConfig],
    epochs: Sequence[float],
    tc: TrainConfig,
    *,
    seeds: Sequence[int] = (0,),
    fractions: Sequence[float] = (1.0,),
    data: dict | None = None,
    max_queries: int | None = None,
    progress: Callable | None = None,
) -> list[GridPoint]:
    """Run (or resume) every (size, epochs, fraction, seed) cell under ``out_dir``.

    Each cell is an independent run (:func:`run_cell`) trained to the end of its own
    schedule. ``out_dir/study.json`` receives the grid's settings, every cell's point
    and the :func:`aggregate_grid` table (rewritten after each cell).

    Args:
        out_dir: the study folder (one sub-folder per cell).
        split, tok: graph, split and tokenizer shared by every cell.
        configs: model sizes.
        epochs: epochs of each cell's schedule.
        tc: optimisation settings (``steps`` and ``seed`` are set per cell).
        seeds: training seeds (replicates of every cell).
        fractions: shares of the training queries.
        data: how the graph was made (recorded in each cell).
        max_queries: evaluate at most this many queries per cell.
        progress: a ``tqdm``-like wrapper for the cell loop.

    Returns:
        One :class:`GridPoint` per cell, in grid order (fraction, size, epochs, seed).

    Example:
        >>> # pts = size_epoch_grid("study", split, tok, size_family(3, V), (4, 16), tc)
        >>> # aggregate_grid(pts)
    """
    out_dir = Path(out_dir)
    cells = [
        (f, c, e, s)
        for f in fractions
        for c in configs
        for e in sorted(set(float(x) for x in epochs))
        for s in seeds
    ]
    settings = {
        "sizes": [dataclasses.asdict(c) for c in configs],
        "epochs": sorted(set(float(x) for x in epochs)),
        "seeds": list(seeds),
        "fractions": list(fractions),
        "train": dataclasses.asdict(tc),
        "data": data or {},
    }
    points: list[GridPoint] = []
    for f, cfg, ep, seed in progress(cells, desc="lm cells") if progress else cells:
        cell_tc = dataclasses.replace(tc, seed=seed)
        p = run_cell(
            out_dir / cell_name(cfg, ep, f, seed),
            cfg,
            cell_tc,
            split,
            tok,
            ep,
            fraction=f,
            data=data,
            max_queries=max_queries,
        )
        points.append(p)
        summary = {
            "settings": settings,
            "cells": [_json_ready(dataclasses.asdict(q)) for q in points],
            "aggregate": [_json_ready(r) for r in aggregate_grid(points)],
        }
        atomic_write(out_dir / STUDY, json.dumps(summary, indent=1, allow_nan=False))
    return points


def _json_ready(rec: dict) -> dict:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()
    }


def aggregate_grid(points: Sequence[GridPoint], level: float = 0.95) -> list[dict]:
    """Mean seen rate per (fraction, size, epochs) over seeds, with a standard error and
    an interval that keep a positive width at rates of exactly 0 or 1.

    One seed: the cell's count is binomial over its ``n`` queries; the interval is the
    Wilson score interval (Brown, Cai & DasGupta 2001, Eq. 4) and the standard error the
    Agresti-Coull one, ``sqrt(p~ (1 - p~) / (n + z^2))`` with ``p~ = (k + z^2/2) / (n +
    z^2)`` (Agresti & Coull 1998); the Wald ``sqrt(r (1 - r) / n)`` would be 0 at the
    edges. ``k >= 2`` seeds: the between-seed standard error of the mean, ``sd(r_1..r_k)
    / sqrt(k)``, or the Agresti-Coull one of the pooled ``k n`` outputs when that is
    larger (seeds that all score 0 have no spread, yet ``k n`` queries bound the rate
    only so far); the interval spans both ``mean -/+ z se_seeds`` (clipped to [0, 1])
    and the pooled Wilson interval.

    Args:
        points: finished cells.
        level: coverage of the intervals, in ``(0, 1)``.

    Returns:
        Records ``fraction``, ``d_model``, ``n_params``, ``epochs``, ``compute``
        (mean), ``rate``, ``se``, ``low``, ``high``, ``se_kind`` (``"binomial"`` or
        ``"seeds"``: which standard error was used), ``n_seeds``, ``n`` (queries per
        seed), ``unseen`` (mean, NaN when none), sorted by fraction, size, epochs.

    Example:
        >>> p = GridPoint(16, 100, 4.0, 10, 1e6, 0.0, 0.0, 0.1, float("nan"), 1.0, 0, 40, "")
        >>> r = aggregate_grid([p])[0]
        >>> (r["rate"], r["low"], round(r["high"], 4), round(r["se"], 4), r["se_kind"])
        (0.0, 0.0, 0.0876, 0.0309, 'binomial')
    """
    z = NormalDist().inv_cdf(0.5 + level / 2) if 0.0 < level < 1.0 else float("nan")
    if math.isnan(z):
        raise ValueError(f"aggregate_grid: level must be in (0, 1), got {level!r}")
    groups: dict[tuple, list[GridPoint]] = {}
    for p in points:
        groups.setdefault((p.fraction, p.d_model, p.n_params, p.epochs), []).append(p)
    out = []
    for (f, d, n_params, ep), ps in sorted(groups.items()):
        rates = np.array([p.seen for p in ps])
        k = len(ps)
        n = max(min(p.n_seen for p in ps), 1)
        pooled = int(round(sum(p.seen * max(p.n_seen, 1) for p in ps)))
        n_pooled = sum(max(p.n_seen, 1) for p in ps)
        se_bin = float(agresti_coull_se(pooled, n_pooled, level))
        low, high = (float(x) for x in wilson_interval(pooled, n_pooled, level))
        se, kind = se_bin, "binomial"
        if k >= 2:
            se_seeds = float(rates.std(ddof=1) / math.sqrt(k))
            mean = float(rates.mean())
            low = min(low, max(0.0, mean - z * se_seeds))
            high = max(high, min(1.0, mean + z * se_seeds))
            if se_seeds >= se_bin:
                se, kind = se_seeds, "seeds"
        unseen = [p.unseen for p in ps if not math.isnan(p.unseen)]
        out.append(
            {
                "fraction": f,
                "d_model": d,
                "n_params": n_params,
                "epochs": ep,
                "compute": float(np.mean([p.compute for p in ps])),
                "rate": float(rates.mean()),
                "se": se,
                "low": low,
                "high": high,
                "se_kind": kind,
                "n_seeds": k,
                "n": n,
                "unseen": float(np.mean(unseen)) if unseen else float("nan"),
            }
        )
    return out
