"""A synthetic document collection built from a knowledge graph, with known answers.

Each person of a graph from :func:`~widelab_lm_hallucination.kg.make_kg` gets a short
biography stating where they were born, who they work for and their birth date, mixed
with distractor sentences that use the same keywords with other values (a sibling's
employer, a city they moved to, a graduation date). Some documents leave a variable
out. Because the answers are known, extraction precision and recall can be measured
exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt

import numpy as np

from ..kg import KnowledgeGraph
from .documents import Document
from .schema import Schema, Variable


@dataclasses.dataclass(frozen=True)
class SyntheticCorpus:
    """Documents, the schema to extract, and the true value of every item.

    Attributes:
        documents: the collection.
        schema: variables ``birthplace`` (category), ``employer`` (category) and
            ``birth_date`` (date).
        truth: ``(doc_id, variable) -> value``, or None where the document does not
            state the variable.
    """

    documents: tuple[Document, ...]
    schema: Schema
    truth: dict[tuple[str, str], str | None]


_BORN = ("{s} was born in {v}.", "{s} is a native of {v}.", "Born in {v}, {s} grew up there.")
_WORKS = (
    "{s} works for {v}.",
    "{s} has been employed by {v} for years.",
    "Today {s} works for {v}.",
)
_DATE = ("{s} was born on {v}.", "{s}'s date of birth is {v}.")
_DISTRACT = (
    "In {y}, {s} moved to {c}.",
    "A cousin of {s} was born in {c}.",
    "{s}'s sister works for {o}.",
    "{s} once turned down an offer from {o}.",
    "{s} graduated on {d}.",
    "Friends say {s} loves visiting {c}.",
)


def _fmt_date(d: _dt.date, style: int) -> str:
    if style == 0:
        return d.isoformat()
    if style == 1:
        return f"{d.day} {d.strftime('%B')} {d.year}"
    return f"{d.strftime('%B')} {d.day}, {d.year}"


def synthetic_corpus(
    kg: KnowledgeGraph, *, seed: int = 0, omit: float = 0.1, distractors: int = 3
) -> SyntheticCorpus:
    """Build biographies of the graph's persons (see the module docstring).

    Args:
        kg: a graph with ``born in`` and ``works for`` relations (as ``make_kg`` draws).
        seed: seed of every random choice.
        omit: probability that a document leaves out each variable.
        distractors: distractor sentences per document.

    Returns:
        :class:`SyntheticCorpus`.

    Raises:
        ValueError: the graph has no person with a ``born in`` or ``works for`` fact.
    """
    if not 0.0 <= omit < 1.0:
        raise ValueError(f"omit must be in [0, 1), got {omit}")
    rng = np.random.default_rng(seed)
    born = {s: o for s, r, o in kg.triples if r == "born in"}
    works = {s: o for s, r, o in kg.triples if r == "works for"}
    people = [s for s in dict.fromkeys(t[0] for t in kg.triples) if s in born or s in works]
    if not people:
        raise ValueError("the graph has no 'born in' or 'works for' facts to write about")
    cities = sorted(
        {o for _, r, o in kg.triples if r in ("born in", "based in")} | set(born.values())
    )
    companies = sorted({s for s, r, _ in kg.triples if r == "based in"} | set(works.values()))
    schema = Schema(
        (
            Variable(
                "birthplace",
                "category",
                categories=tuple(cities),
                keywords=("born in", "native of"),
                questions=("Where was this person born?",),
                relation="born in",
            ),
            Variable(
                "employer",
                "category",
                categories=tuple(companies),
                keywords=("works for", "employed by"),
                questions=("Who does this person work for?",),
                relation="works for",
            ),
            Variable(
                "birth_date",
                "date",
                keywords=("born on", "date of birth"),
                questions=("When was this person born?",),
            ),
        )
    )
    docs, truth = [], {}
    for i, s in enumerate(people):
        doc_id = f"doc{i:05d}"
        sents, t = [], {}
        if s in born and rng.random() >= omit:
            sents.append(_BORN[rng.integers(len(_BORN))].format(s=s, v=born[s]))
            t["birthplace"] = born[s]
        if s in works and rng.random() >= omit:
            sents.append(_WORKS[rng.integers(len(_WORKS))].format(s=s, v=works[s]))
            t["employer"] = works[s]
        if rng.random() >= omit:
            d = _dt.date(1940, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 60 * 365)))
            sents.append(_DATE[rng.integers(len(_DATE))].format(s=s, v=_fmt_date(d, i % 3)))
            t["birth_date"] = d.isoformat()
        for _ in range(distractors):
            c = cities[rng.integers(len(cities))]
            o = companies[rng.integers(len(companies))]
            d = _dt.date(1960, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 50 * 365)))
            tmpl = _DISTRACT[rng.integers(len(_DISTRACT))]
            y = int(rng.integers(1970, 2020))
            sents.append(tmpl.format(s=s, c=c, o=o, d=_fmt_date(d, int(rng.integers(3))), y=y))
        order = rng.permutation(len(sents))
        text = " ".join(sents[j] for j in order)
        docs.append(Document(doc_id, text, {"subject": s}))
        for name in schema.names():
            truth[(doc_id, name)] = t.get(name)
    return SyntheticCorpus(tuple(docs), schema, truth)
