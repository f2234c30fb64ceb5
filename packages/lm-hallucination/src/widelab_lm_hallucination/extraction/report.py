"""The extraction part of the lm report: precision and recall against validation effort."""

from __future__ import annotations

from widelab_core.command import ReportContext, ReportSection

from .functions import labelling_function
from .pipeline import POLICIES, run_extraction
from .store import Store
from .study import TimeModel, manual_seconds, simulate_validation
from .synthetic import synthetic_corpus

TARGETS = (0.95, 0.99)


def _plot(curves, manual: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for c in curves:
        x = c.seconds / manual
        axes[0].plot(x, c.precision, label=c.policy)
        axes[1].plot(x, c.recall, label=c.policy)
    for ax, name in zip(axes, ("precision", "recall")):
        ax.axvline(1.0, color="k", ls=":", lw=1)
        ax.set_xlabel("validation time / time to annotate everything by hand")
        ax.set_ylabel(f"{name} of the extracted table")
        ax.set_ylim(min(0.5, ax.get_ylim()[0]), 1.01)
    axes[0].legend(fontsize=7, title="order", title_fontsize=7)
    fig.tight_layout()
    return fig


def extraction_report(ctx: ReportContext, sec: ReportSection, *, threshold: float = 0.5) -> None:
    """Add the effort/precision study to ``sec`` (keyword function; quick: 120 entities)."""
    from ..kg import make_kg

    kg = make_kg(120 if ctx.quick else 400, seed=ctx.seed)
    corpus = synthetic_corpus(kg, seed=ctx.seed)
    times = TimeModel(per_variable={"birth_date": 2.0})
    truth = corpus.truth
    fns = {"keyword": labelling_function("keyword")}
    curves = []
    for policy in ctx.bar(POLICIES, desc="extraction policies"):
        with Store(":memory:", corpus.schema) as store:
            run_extraction(store, corpus.documents, fns, progress=False)
            curves.append(
                simulate_validation(store, truth, policy, threshold=threshold, times=times)
            )
    n_stated = sum(v is not None for v in truth.values())
    manual = manual_seconds(len(truth), n_stated, times)
    p0, r0 = curves[0].precision[0], curves[0].recall[0]
    sec.text(
        f"Human-validated extraction (Butcher et al. 2023): {len(corpus.documents)} synthetic "
        f"biographies written from the graph, {len(truth)} (document, variable) items, each "
        "with distractor sentences that reuse the keywords with other values. A keyword "
        "labelling function proposes candidates with confidences; unchecked items take "
        f"their best candidate when its confidence is at least {threshold}. A simulated, "
        "always-right person then validates items in each order, and the curves show the "
        "precision and recall of the resulting table against the time spent, relative to "
        "annotating every item by hand. Fully automatic extraction is the left end of each "
        "curve; validating everything is the right end."
    )
    sec.figure(
        _plot(curves, manual),
        "Precision and recall of the extracted table against validation time (dotted: "
        "time to annotate everything by hand).",
    )
    rows = []
    for c in curves:
        row = [c.policy]
        for t in TARGETS:
            hit = c.effort_for_precision(t)
            row += [hit[0], hit[1] / manual] if hit else ["not reached", "-"]
        rows.append(row)
    header = ["order"]
    for t in TARGETS:
        header += [f"decisions to precision {t}", f"time to {t} / manual"]
    sec.table(header, rows, caption="Effort to reach a precision target, by validation order.")
    sec.metric("extraction automatic precision", float(p0), unit="1", better="higher")
    sec.metric("extraction automatic recall", float(r0), unit="1", better="higher")
    best = curves[POLICIES.index("confidence")].effort_for_precision(0.99)
    sec.metric(
        "extraction time to 0.99 precision / manual time",
        None if best is None else best[1] / manual,
        unit="1",
        better="lower",
        note="" if best is not None else "0.99 precision not reached",
    )
