"""Precision and recall against validation effort (Butcher et al. 2023, in simulation).

A simulated validator works through the open items of a store in a policy's order,
recording decisions through :meth:`Store.validate` exactly as the UI does. After each
decision the extracted table is the validated values plus, for items nobody has
checked, the top candidate when its confidence reaches a threshold (fully automatic
extraction). Precision is the share of extracted values that are right; recall the
share of stated values that were extracted. Effort is counted in decisions and in
seconds under a simple time model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from .pipeline import POLICIES, automatic_values, queue
from .store import Store


@dataclasses.dataclass(frozen=True)
class TimeModel:
    """Seconds a person needs per decision.

    Attributes:
        read: reading the evidence of an item.
        accept: accepting the shown candidate.
        other: choosing another listed candidate.
        type_value: typing a value that no candidate has.
        none: stating that the document does not give the variable.
        per_variable: extra reading seconds for particular variables (e.g. dates).
    """

    read: float = 4.0
    accept: float = 1.5
    other: float = 3.0
    type_value: float = 9.0
    none: float = 2.0
    per_variable: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EffortCurve:
    """Quality of the extracted table after each validation decision.

    Attributes:
        policy: the ordering policy.
        decisions: ``0..n`` decisions made.
        seconds: cumulative seconds after each count of decisions.
        precision, recall: of the extracted table at each point.
    """

    policy: str
    decisions: np.ndarray
    seconds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray

    def effort_for_precision(self, target: float) -> tuple[int, float] | None:
        """Fewest decisions (and their seconds) reaching ``target`` precision, or None."""
        hit = np.nonzero(self.precision >= target)[0]
        if len(hit) == 0:
            return None
        i = int(hit[0])
        return int(self.decisions[i]), float(self.seconds[i])


def table_quality(
    values: Mapping[tuple[str, str], str | None],
    truth: Mapping[tuple[str, str], str | None],
) -> tuple[float, float]:
    """Precision and recall of an extracted table against the truth.

    Args:
        values: extracted ``item -> value`` (None: the item is left empty).
        truth: ``item -> true value`` (None: the document does not state it).

    Returns:
        ``(precision, recall)``; precision is 1.0 for an empty table.
    """
    out = [(k, v) for k, v in values.items() if v is not None]
    right = sum(truth.get(k) == v for k, v in out)
    stated = sum(v is not None for v in truth.values())
    prec = right / len(out) if out else 1.0
    rec = right / stated if stated else 1.0
    return prec, rec


def simulate_validation(
    store: Store,
    truth: Mapping[tuple[str, str], str | None],
    policy: str,
    *,
    threshold: float = 0.5,
    times: TimeModel | None = None,
    budget: int | None = None,
    reorder_every: int = 10,
    who: str = "simulated",
) -> EffortCurve:
    """Validate a store's items in ``policy`` order with a perfect simulated person.

    For each item the person sees the candidates best first: accepts the top one if it
    is right, picks the right one among the others (``other``), types the value when no
    candidate has it, or marks ``none`` when the document does not state it. Decisions
    go through :meth:`Store.validate` with the seconds of ``times``.

    Args:
        store: a store filled by :func:`~.pipeline.run_extraction` (it is written to:
            use a copy per policy).
        truth: true value per item.
        policy: one of :data:`~.pipeline.POLICIES`.
        threshold: confidence for automatic acceptance of unchecked items.
        times: the time model.
        budget: stop after this many decisions (default: every item).
        reorder_every: recompute the queue after this many decisions (the ``gain``
            policy uses the mean seconds measured so far).
        who: validator name recorded in the store.

    Returns:
        :class:`EffortCurve`.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    times = times or TimeModel()
    auto = automatic_values(store, threshold)
    items = store.items()
    table = {it: auto.get(it) for it in items}
    cands: dict[tuple[str, str], list] = {}
    for sc in store.candidates():
        c = sc.candidate
        cands.setdefault((c.doc_id, c.variable), []).append(sc)
    p, r = table_quality(table, truth)
    decisions, secs, precs, recs = [0], [0.0], [p], [r]
    total = 0.0
    limit = len(items) if budget is None else min(budget, len(items))
    order: list = []
    done = 0
    while done < limit:
        if not order or done % reorder_every == 0:
            order = queue(store, policy, threshold=threshold)
            if not order:
                break
        item = order.pop(0)
        doc_id, var = item
        true = truth.get(item)
        listed = cands.get(item, [])
        extra = times.per_variable.get(var, 0.0)
        if listed and listed[0].candidate.value == true:
            kw = dict(decision="accept", candidate_id=listed[0].id)
            sec = times.read + extra + times.accept
        elif any(sc.candidate.value == true for sc in listed):
            hit = next(sc for sc in listed if sc.candidate.value == true)
            kw = dict(decision="other", candidate_id=hit.id)
            sec = times.read + extra + times.other
        elif true is None:
            kw = dict(decision="none")
            sec = times.read + extra + times.none
        else:
            kw = dict(decision="value", value=true)
            sec = times.read + extra + times.type_value
        store.validate(doc_id, var, who=who, seconds=sec, **kw)
        table[item] = true
        total += sec
        done += 1
        p, r = table_quality(table, truth)
        decisions.append(done)
        secs.append(total)
        precs.append(p)
        recs.append(r)
    return EffortCurve(
        policy, np.asarray(decisions), np.asarray(secs), np.asarray(precs), np.asarray(recs)
    )


def manual_seconds(n_items: int, n_stated: int, times: TimeModel | None = None) -> float:
    """Seconds to annotate every item by hand: read each item, type each stated value."""
    times = times or TimeModel()
    return n_items * times.read + n_stated * times.type_value + (n_items - n_stated) * times.none
