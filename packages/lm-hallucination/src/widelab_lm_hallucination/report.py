"""The lm-hallucination section of ``widelab report``.

Quick mode trains a grid of tiny transformers on a small synthetic KG, one run per
(model size, epochs) cell, and plots the hallucination rate on seen facts against
model size and epochs (Hron et al. 2024, Fig. 2 in miniature), with the rate broken
down by relation and by subject and object frequency. Full mode adds a larger graph and more sizes, the data-fraction
study, the compute fit with the Chinchilla comparison, detectors and ReST-EM.
"""

from __future__ import annotations

import math
import tempfile

import jax
import numpy as np
from widelab_core.command import ReportContext, ReportSection


def _plot_rates(points, sizes):
    """Seen rate against epochs (per size, with the 95% interval of
    :func:`~widelab_lm_hallucination.aggregate_grid` as a band) and against size."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .grid import aggregate_grid

    agg = [r for r in aggregate_grid(points) if r["fraction"] == 1.0]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for d in sizes:
        rs = [r for r in agg if r["d_model"] == d]
        ep = [r["epochs"] for r in rs]
        axes[0].plot(
            ep, [r["rate"] for r in rs], "o-", label=f"d={d} ({rs[0]['n_params']:,} params)"
        )
        axes[0].fill_between(ep, [r["low"] for r in rs], [r["high"] for r in rs], alpha=0.2)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("epochs")
    axes[0].set_ylabel("hallucination rate (seen, greedy)")
    axes[0].legend(fontsize=7)
    for ep in sorted({r["epochs"] for r in agg}):
        rs = [r for r in agg if r["epochs"] == ep]
        lo = [r["rate"] - r["low"] for r in rs]
        hi = [r["high"] - r["rate"] for r in rs]
        axes[1].errorbar(
            [r["n_params"] for r in rs],
            [r["rate"] for r in rs],
            yerr=[lo, hi],
            fmt="o-",
            capsize=3,
            label=f"{ep:g} ep",
        )
    axes[1].set_xscale("log")
    for ax in axes:
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[1].set_xlabel("non-embedding parameters")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def lm_report(ctx: ReportContext) -> ReportSection:
    """Build the report section (see the module docstring for what runs in each mode)."""
    from .corpus import Tokenizer
    from .grid import cell_outputs, size_epoch_grid
    from .kg import make_kg, split_kg
    from .model import size_family
    from .studies import (
        chinchilla_comparison,
        chinchilla_compute,
        compute_for_rate,
        fit_rate_vs_compute,
    )
    from .train import TrainConfig

    sec = ReportSection("Language models on a knowledge graph: hallucinations")
    quick = ctx.quick
    kg = make_kg(30 if quick else 200, seed=ctx.seed, homonym_share=0.0 if quick else 0.02)
    split = split_kg(kg, 0.1, seed=ctx.seed)
    tok = Tokenizer.fit(kg.triples)
    seq = 48 if quick else 64
    sizes = size_family(
        3 if quick else 4, tok.vocab_size, d_min=16, seq_len=seq, n_layers=1 if quick else 2
    )
    # one run per cell: quick mode keeps two epoch settings per size
    epochs = (8, 32) if quick else (4, 8, 16, 32, 64, 128)
    tc = TrainConfig(
        batch_size=8 if quick else 16, lr=1e-2 if quick else 3e-3, warmup=10, seed=ctx.seed
    )
    sec.text(
        f"A synthetic KG with {len(kg)} facts ({len(kg.queries())} (subject, relation) "
        f"queries, {len(split.unseen)} held out) is serialised as '<S> subject <P> relation "
        "<O> object <EOS>' and used to train decoder-only transformers built from the core "
        "layer algebra. A hallucination is a greedy-decoded object that is not among the "
        "KG's valid objects for the query (Hron et al., COLM 2024)."
    )
    with tempfile.TemporaryDirectory(prefix="widelab-lm-grid-") as grid_dir:
        points = size_epoch_grid(
            grid_dir,
            split,
            tok,
            sizes,
            epochs,
            tc,
            fractions=(1.0,) if quick else (0.5, 1.0),
            progress=ctx.bar,
        )
        largest = [p for p in points if p.fraction == 1.0 and p.d_model == sizes[-1].d_model]
        queries, flags = cell_outputs(max(largest, key=lambda p: p.epochs).run_dir)
    sec.figure(
        _plot_rates(points, [c.d_model for c in sizes]),
        "Hallucination rate on seen facts against epochs and size, with 95% Wilson score "
        "intervals (one seed; with several, widened by the between-seed spread); "
        "every point is its own run, trained to the end of its own learning-rate schedule.",
    )
    _grid_table(sec, points)
    _breakdown(sec, split.train, queries, flags)
    full = [p for p in points if p.fraction == 1.0]
    best = min(full, key=lambda p: p.seen)
    sec.metric("lm best seen hallucination rate", best.seen, unit="1", better="lower")
    sec.metric("lm rate of largest model at most epochs", full[-1].seen, unit="1", better="lower")
    _bounds_text(sec, split, sizes)
    try:
        fit = fit_rate_vs_compute(full)
        c5 = compute_for_rate(fit, 0.05)
        tokens = sum(len(tok.encode_fact(*t)) for t in split.train.triples)
        chin = chinchilla_compute(tokens)
        measured = max(p.compute for p in full)
        sec.metric("lm rate-vs-compute slope", fit.slope, unit="1", better="lower")
        sec.metric(
            "lm training FLOPs for 5% rate (fit)",
            c5,
            unit="FLOP",
            better="lower",
            note="" if math.isfinite(c5) else "the fitted law never reaches 5%",
        )
        sec.text(
            "Compute is training floating-point operations (FLOPs): 6N + 12 L d T per "
            "token (N matmul parameters, L blocks, width d, context T; Chowdhery et al. "
            f"2022, App. B) times the tokens trained. A power law fitted to the compute "
            f"frontier (slope {fit.slope:.2f}) reaches a 5% rate at {c5:.3g} FLOPs; the "
            f"largest measured run used {measured:.3g} FLOPs."
        )
        cmp = chinchilla_comparison(fit, tokens, measured)
        if not cmp["meaningful"]:
            sec.text(
                "The fit is too small to compare with the compute-optimal (Chinchilla) "
                f"budget: {cmp['reason']}. Hron et al. found the 5% rate needs about ten "
                "times the compute-optimal budget for models of millions to billions of "
                "parameters."
            )
        else:
            sec.metric(
                "lm Chinchilla training FLOPs (N=D/20, one epoch)",
                chin["compute"],
                unit="FLOP",
                better="neither",
            )
            sec.metric(
                "lm 5%-rate FLOPs over Chinchilla FLOPs", cmp["ratio"], unit="1", better="lower"
            )
            sec.text(
                f"The Chinchilla allocation for the same {tokens} tokens (N = "
                f"{chin['n_params']:.3g} parameters, one epoch) costs {chin['compute']:.3g} "
                f"FLOPs, {cmp['ratio']:.3g} times less than the 5% point (Hron et al.: "
                "about ten times)."
            )
    except ValueError as e:
        sec.text(f"No compute fit: {e}.")
    if not quick:
        _full_extras(sec, ctx, split, tok, sizes, tc)
    return sec


def _grid_table(sec, points):
    """The grid aggregated per (fraction, size, epochs), with standard errors."""
    from .grid import aggregate_grid

    agg = aggregate_grid(points)
    cols = ["fraction", "d_model", "n_params", "epochs", "compute", "rate", "se", "low", "high"]
    sec.table(
        ["fraction", "d_model", "params", "epochs", "FLOPs", "seen rate", "se", "low", "high"]
        + ["unseen rate"],
        [[r[c] for c in cols] + [r["unseen"]] for r in agg],
        caption="Greedy hallucination rates per grid cell (seen: trained queries; low / "
        "high: 95% Wilson score interval over queries, se: the Agresti-Coull standard "
        "error, both positive at rates of 0 or 1; with several seeds se is the between-seed "
        "one when larger and the interval covers mean -/+ 1.96 se; unseen: held-out pairs).",
    )
    full = [r for r in agg if r["fraction"] == 1.0]
    most = max(r["epochs"] for r in full)
    by_size = [r for r in full if r["epochs"] == most]
    _rate_metrics(sec, f"lm seen rate against size at {most:g} epochs", by_size)
    sec.metric(
        "lm sizes (non-embedding parameters)",
        [r["n_params"] for r in by_size],
        summary=False,
        unit="parameters",
        better="neither",
    )
    biggest = max(r["d_model"] for r in full)
    by_ep = [r for r in full if r["d_model"] == biggest]
    _rate_metrics(sec, "lm seen rate of the largest model against epochs", by_ep)
    sec.metric(
        "lm epochs of the grid",
        [r["epochs"] for r in by_ep],
        summary=False,
        unit="epochs",
        better="neither",
    )


def _rate_metrics(sec, name, recs, better="lower"):
    """A rate figure with its standard error, and its 95% interval as two figures."""
    sec.metric(
        name,
        [r["rate"] for r in recs],
        summary=False,
        unit="1",
        better=better,
        se=[r["se"] for r in recs],
    )
    for side in ("low", "high"):
        sec.metric(
            f"{name} (95% interval {side})",
            [r[side] for r in recs],
            summary=False,
            unit="1",
            better="neither",
        )


def _breakdown(sec, train_kg, queries, flags):
    """Rates of the largest, longest-trained model by relation and by frequency."""
    from .bounds import rate_by
    from .intervals import agresti_coull_se, wilson_interval

    rows = []
    for by in ("relation", "subject", "object"):
        recs = rate_by(train_kg, queries, flags, by=by)
        for r in recs:
            k = int(round(r["rate"] * r["n"]))
            low, high = wilson_interval(k, r["n"])
            r.update(se=float(agresti_coull_se(k, r["n"])), low=float(low), high=float(high))
            rows.append([by, r["group"], r["n"], r["rate"], r["se"], r["low"], r["high"]])
        if by != "relation":
            _rate_metrics(
                sec, f"lm seen rate by {by} frequency (low to high)", recs, better="neither"
            )
    sec.table(
        ["by", "group", "queries", "rate", "se", "low", "high"],
        rows,
        caption="Seen-query hallucination rate of the largest model at the most epochs, by "
        "relation and by subject / object training frequency (equal-count bins; "
        "Agresti-Coull standard errors and 95% Wilson score intervals).",
    )


def _bounds_text(sec, split, sizes):
    """Capacity bound and the popular-object baseline for unseen queries."""
    from .bounds import capacity_bound, popular_object_baseline
    from .model import param_counts

    cap = capacity_bound(split.train, bits_per_param=2.0)
    sec.metric("lm knowledge in training graph (bits)", cap["bits"], unit="bit", better="neither")
    sec.metric(
        "lm parameters needed at 2 bits/parameter",
        cap["min_params"],
        unit="parameters",
        better="neither",
    )
    largest = param_counts(sizes[-1])["total"]
    text = (
        f"The training graph holds {cap['bits']:.0f} bits of facts (each query's object set "
        f"among its relation's objects); at about 2 bits per parameter (Allen-Zhu & Li 2024) "
        f"storing them needs at least {cap['min_params']:.0f} parameters; the largest model "
        f"here has {largest:,} (all parameters, embeddings included)."
    )
    if split.unseen:
        base = popular_object_baseline(split.train, split.full, list(split.unseen))
        sec.metric("lm popular-object baseline rate (unseen)", base, unit="1", better="neither")
        text += (
            f" Answering each unseen query with its relation's most frequent training object "
            f"hallucinates at rate {base:.2f}: the bar a model must beat to show more than "
            "the marginal."
        )
    sec.text(text)


def _full_extras(
    sec,
    ctx,
    split,
    tok,
    sizes,
    tc,
    *,
    epochs=32,
    rest_steps=150,
    widths=(4, 16, 64),
    det_steps=300,
    finetune_steps=100,
):
    """Detectors against LM and detector size, the validation budget and ReST-EM
    (``det_steps`` / ``finetune_steps``: training steps of the frozen-LM heads and of
    the fine-tuned detector)."""
    import dataclasses

    from .detectors import DetectorConfig, detectability, validation_budget
    from .hallucination import decode_budget, generate, is_hallucination
    from .model import param_counts
    from .selftrain import RestConfig, rest_em
    from .studies import train_with_evals

    lms = []
    for cfg in ctx.bar(sizes, desc="lm detectors"):
        _, res = train_with_evals(cfg, tc, split, tok, (epochs,))
        lms.append((cfg, res.state.params))
    key = jax.random.key(ctx.seed)
    seen = list(split.seen)
    heads = [DetectorConfig(task=t, width=32, steps=det_steps) for t in ("sentence", "token")]
    cols = ["d_model", "task", "mode", "width", "auc_pr", "prevalence", "auroc", "auroc_low"]
    cols += ["auroc_high", "auroc_se", "n"]
    rows = detectability(lms, split.full, tok, seen, heads, key=key)
    sec.table(
        cols,
        [[r[c] for c in cols] for r in rows],
        caption="Frozen-LM detector heads and the LM's own training-free likelihood scores "
        "(object NLL, token entropy) against LM size (AUC-PR chance = prevalence; "
        "auroc_low / auroc_high: 95% percentile bootstrap interval resampling whole "
        "queries (all samples and tokens of a query together), 1000 replicates; auroc_se: "
        "Hanley & McNeil 1982 standard error, which treats items as independent).",
    )
    _detector_figures(sec, rows, {c.d_model: param_counts(c)["non_embedding"] for c, _ in lms})
    by_size = [DetectorConfig(width=w, steps=det_steps) for w in widths]
    by_size.append(DetectorConfig(mode="finetune", steps=finetune_steps))
    rows = detectability(lms[-1:], split.full, tok, seen, by_size, key=key)
    sec.table(
        cols,
        [[r[c] for c in cols] for r in rows],
        caption="Sentence detectors of growing size on the largest LM (AUROC interval: "
        "95% percentile bootstrap by query; auroc_se: Hanley-McNeil).",
    )
    cfg, params = lms[-1]
    budget = decode_budget(tok, split.full)
    gen = generate(cfg, params, tok, seen, greedy=False, n_samples=4, key=key, max_new=budget)
    from .detectors import split_generations, train_detector

    tr, te = split_generations(gen, seed=ctx.seed)
    y = is_hallucination(split.full, te.queries, te.objects, te.finished)
    if 0 < y.sum() < len(y):
        det = train_detector(by_size[-2], cfg, params, split.full, tr, key=key)
        shares = np.linspace(0, 1, 11)
        prec = validation_budget(y, det.scores(te.tokens), shares)
        rnd = validation_budget(y, np.random.default_rng(0).random(len(y)), shares)
        sec.table(
            ["share checked", "precision (detector order)", "precision (random order)"],
            [[a, b, c] for a, b, c in zip(shares, prec, rnd)],
            caption="Validation budget: precision of accepted facts when the least "
            "confident outputs are checked against the KG.",
        )
    cfg, params = lms[len(lms) // 2]
    ft = dataclasses.replace(tc, steps=rest_steps, lr=1e-3, loss_on="answer")
    rc = RestConfig(iterations=2, finetune=ft)
    hist, _ = rest_em(cfg, params, tok, split, rc, key=key)
    keys = list(hist[0])
    sec.table(keys, [[h[k] for k in keys] for h in hist], caption="ReST-EM per iteration.")


def _detector_label(r) -> str:
    return r["mode"] if r["width"] == 0 else f"{r['task']} head ({r['mode']})"


def _auroc_bars(r) -> tuple[float, float]:
    """Lower and upper error-bar lengths of a record's AUROC: the bootstrap interval
    where present, else 1.96 Hanley-McNeil standard errors (NaN: no bar)."""
    auc, low, high = r["auroc"], r.get("auroc_low", math.nan), r.get("auroc_high", math.nan)
    if math.isfinite(low) and math.isfinite(high):
        return auc - low, high - auc
    return 1.96 * r["auroc_se"], 1.96 * r["auroc_se"]


def _detector_figures(sec, rows, n_params):
    """AUROC of each detector against LM size, with 95% bootstrap intervals (figure and
    JSON: value, Hanley-McNeil se, and the interval's bounds as two figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(_detector_label(r) for r in rows))
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for label in labels:
        rs = [r for r in rows if _detector_label(r) == label]
        x = [n_params[r["d_model"]] for r in rs]
        auc = [r["auroc"] for r in rs]
        se = [r["auroc_se"] for r in rs]
        bars = np.array([_auroc_bars(r) for r in rs]).T
        ax.errorbar(x, auc, yerr=bars, fmt="o-", capsize=3, label=label)
        sec.metric(
            f"lm detector AUROC against LM size ({label})",
            auc,
            summary=False,
            unit="1",
            better="higher",
            se=se,
        )
        for side in ("low", "high"):
            sec.metric(
                f"lm detector AUROC against LM size ({label}) (95% bootstrap {side})",
                [r.get(f"auroc_{side}", math.nan) for r in rs],
                summary=False,
                unit="1",
                better="neither",
            )
    sec.metric(
        "lm detector LM sizes (non-embedding parameters)",
        sorted(n_params.values()),
        summary=False,
        unit="parameters",
        better="neither",
    )
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    if len(set(n_params.values())) > 1:
        ax.set_xscale("log")
    ax.set_xlabel("LM non-embedding parameters")
    ax.set_ylabel("AUROC (held-out outputs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    sec.figure(
        fig,
        "Detector AUROC against LM size with 95% percentile bootstrap intervals resampling "
        "whole queries (1000 replicates; 1.96 Hanley-McNeil standard errors for records "
        "without one); "
        "the dashed line is chance.",
    )
