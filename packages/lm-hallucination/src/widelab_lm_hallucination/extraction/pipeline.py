"""Running labelling functions over a collection, ordering the validation queue, export."""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .documents import Document
from .functions import LabellingFunction
from .store import Store

POLICIES = ("confidence", "gain", "document")


@dataclasses.dataclass(frozen=True)
class RunStats:
    """What one extraction run did."""

    documents: int
    skipped: int
    candidates: int
    seconds: float


def run_extraction(
    store: Store,
    documents: Iterable[Document],
    functions: Mapping[str, LabellingFunction],
    *,
    progress: bool | None = None,
    on_document: Callable[[Document], None] | None = None,
    chunk_size: int = 256,
) -> RunStats:
    """Run every labelling function over every document, storing candidates.

    Each (document, function) pair is stored in one transaction and marked processed,
    so running the same command again after an interruption skips finished work and
    never duplicates a candidate.

    Args:
        store: the extraction store (its schema gives the variables).
        documents: the collection (read lazily).
        functions: name -> labelling function.
        progress: show a progress bar (default: when stderr is a terminal); otherwise
            a plain line per chunk of documents.
        on_document: called after each document is stored (used by tests to interrupt).
        chunk_size: documents read ahead at a time; functions with a
            ``prepare(documents, schema)`` method (e.g. a language model decoding in
            batches) get each chunk at once.

    Returns:
        :class:`RunStats`.
    """
    if not functions:
        raise ValueError("run_extraction needs at least one labelling function")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    t0 = time.perf_counter()
    n_doc = n_skip = n_cand = 0
    bar = tqdm(desc="extract", unit="doc", disable=not show)
    chunk: list[Document] = []

    def flush():
        nonlocal n_skip, n_cand
        todo = {d.id: [n for n in functions if not store.is_processed(d.id, n)] for d in chunk}
        for name, fn in functions.items():
            prep = getattr(fn, "prepare", None)
            if prep is not None:
                need = [d for d in chunk if name in todo[d.id]]
                if need:
                    prep(need, store.schema)
        for doc in chunk:
            if not todo[doc.id]:
                n_skip += 1
            for name in todo[doc.id]:
                fn = functions[name]
                cands = [c for var in store.schema.variables for c in fn(doc, var)]
                n_cand += store.add_document_results(doc, name, cands)
            if on_document is not None:
                on_document(doc)
            bar.update(1)
        chunk.clear()

    for doc in documents:
        n_doc += 1
        chunk.append(doc)
        if len(chunk) >= chunk_size:
            flush()
            if not show:
                print(
                    f"extract: {n_doc} documents, {n_cand} new candidates, "
                    f"{time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                )
    flush()
    bar.close()
    return RunStats(n_doc, n_skip, n_cand, time.perf_counter() - t0)


def mean_seconds(store: Store, default: float = 5.0) -> dict[str, float]:
    """Mean seconds per decision of each variable so far (``default`` where none)."""
    tot: dict[str, list[float]] = {}
    for v in store.validations():
        tot.setdefault(v.variable, []).append(v.seconds)
    return {
        name: (sum(tot[name]) / len(tot[name]) if tot.get(name) else default)
        for name in store.schema.names()
    }


def queue(
    store: Store, policy: str = "confidence", *, threshold: float = 0.5
) -> list[tuple[str, str]]:
    """The open items in the order a person should validate them.

    An item whose best (not rejected) candidate has confidence ``c >= threshold`` is
    extracted automatically with that value; the others are left empty.

    Policies:
        ``confidence``: the automatic extractions first, least confident first (the
        likeliest wrong values); then the items left empty, most promising candidate
        first; items with no candidate last.
        ``gain``: expected table errors fixed per expected second. An automatic value is
        wrong with probability ``1 - c``; an empty item gets a right value with
        probability ``c`` (its best candidate) or, without candidates, the share of
        validated items that had a value so far. Each is divided by the mean seconds
        per decision on that variable so far: the greedy budget-optimal order when
        decisions cost unequal time.
        ``document``: documents in collection order, variables in schema order (what
        annotating everything by hand does).

    Raises:
        ValueError: unknown policy or a threshold outside ``[0, 1]``.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    resolved = store.resolved()
    rejected = store.rejected()
    best: dict[tuple[str, str], float] = {}
    for sc in store.candidates():
        c = sc.candidate
        if sc.id in rejected:
            continue
        key = (c.doc_id, c.variable)
        best[key] = max(best.get(key, 0.0), c.confidence)
    items = [it for it in store.items() if it not in resolved]
    if policy == "document":
        return items
    if policy == "confidence":

        def rank(it):
            if it not in best:
                return (2, 0.0)
            c = best[it]
            return (0, c) if c >= threshold else (1, -c)

        return sorted(items, key=rank)
    t = mean_seconds(store)
    stated = [v.decision != "none" for v in resolved.values()]
    p_stated = (sum(stated) + 1) / (len(stated) + 2)

    def gain(it):
        c = best.get(it)
        fixed = p_stated if c is None else (1.0 - c if c >= threshold else c)
        return -fixed / max(t[it[1]], 1e-9)

    return sorted(items, key=gain)


def automatic_values(store: Store, threshold: float = 0.5) -> dict[tuple[str, str], str]:
    """Fully automatic extraction: each item's top candidate if its confidence >= threshold."""
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for sc in store.candidates():
        c = sc.candidate
        key = (c.doc_id, c.variable)
        if c.confidence >= threshold and (key not in out or c.confidence > out[key][0]):
            out[key] = (c.confidence, c.value)
    return {k: v for k, (_, v) in out.items()}


EXPORT_FIELDS = (
    "doc_id",
    "variable",
    "value",
    "decision",
    "source",
    "function",
    "confidence",
    "start",
    "end",
    "sentence",
    "validator",
    "validated_at",
    "seconds",
)


def export_rows(store: Store, *, automatic_threshold: float | None = None) -> list[dict]:
    """Validated values with provenance, one row per resolved item.

    Args:
        store: the extraction store.
        automatic_threshold: also export unvalidated items' top candidates with at least
            this confidence (``source`` = ``automatic``); None exports validated items only.

    Returns:
        Rows with the fields of :data:`EXPORT_FIELDS`. ``decision`` ``none`` rows have an
        empty value: the person found that the document does not state the variable.
    """
    rows = []
    resolved = store.resolved()
    for (doc_id, var), v in resolved.items():
        cand = store.candidate(v.candidate_id).candidate if v.candidate_id is not None else None
        rows.append(
            {
                "doc_id": doc_id,
                "variable": var,
                "value": v.value or "",
                "decision": v.decision,
                "source": "validated",
                "function": cand.function if cand else "",
                "confidence": cand.confidence if cand else "",
                "start": cand.start if cand else "",
                "end": cand.end if cand else "",
                "sentence": cand.sentence if cand else "",
                "validator": v.who,
                "validated_at": _dt.datetime.fromtimestamp(v.at, _dt.UTC).isoformat(),
                "seconds": v.seconds,
            }
        )
    if automatic_threshold is not None:
        top: dict[tuple[str, str], object] = {}
        rejected = store.rejected()
        for sc in store.candidates():
            c = sc.candidate
            key = (c.doc_id, c.variable)
            if key in resolved or sc.id in rejected or c.confidence < automatic_threshold:
                continue
            if key not in top or c.confidence > top[key].confidence:
                top[key] = c
        for (doc_id, var), c in top.items():
            rows.append(
                {
                    "doc_id": doc_id,
                    "variable": var,
                    "value": c.value,
                    "decision": "",
                    "source": "automatic",
                    "function": c.function,
                    "confidence": c.confidence,
                    "start": c.start,
                    "end": c.end,
                    "sentence": c.sentence,
                    "validator": "",
                    "validated_at": "",
                    "seconds": "",
                }
            )
    order = {d: i for i, d in enumerate(store.document_ids())}
    names = {n: i for i, n in enumerate(store.schema.names())}
    rows.sort(key=lambda r: (order.get(r["doc_id"], 0), names.get(r["variable"], 0)))
    return rows


def export(store: Store, out: str | Path, *, automatic_threshold: float | None = None) -> int:
    """Write :func:`export_rows` to ``out`` as CSV (``.csv``) or JSON lines (``.jsonl``).

    Written through a temporary file and a rename.

    Returns:
        The number of rows written.

    Raises:
        ValueError: ``out`` ends in neither ``.csv`` nor ``.jsonl``.
    """
    from widelab_core.command import atomic_write

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ValueError(f"export file {out} must end in .csv or .jsonl")
    rows = export_rows(store, automatic_threshold=automatic_threshold)
    if suffix == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write(out, buf.getvalue())
    else:
        atomic_write(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)
