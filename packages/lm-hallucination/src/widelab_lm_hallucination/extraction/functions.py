"""Labelling functions: a registry of extractors that emit candidate values with evidence.

A labelling function takes a :class:`~.documents.Document` and a
:class:`~.schema.Variable` and yields :class:`Candidate` extractions. Register your own
with :func:`register_labelling_function`::

    @register_labelling_function("capitals")
    def capitals(min_len=3):
        def fn(doc, var):
            ...  # yield Candidate(...) objects
        return fn

and build it by name with :func:`labelling_function`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Iterator

from .documents import Document
from .schema import Variable
from .text import DATE_RE, NUMBER_RE, context_window, find_phrase, sentence_at, sentences


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A candidate value for one variable of one document, with its evidence.

    Attributes:
        doc_id: the document.
        variable: the variable's name.
        value: the value in the variable's canonical form.
        start, end: offsets of the exact span in the document text (``-1`` when the
            value was produced without a span in the text, e.g. by a language model).
        sentence: the sentence holding the span ("" without a span).
        context_start, context_end: offsets of a wider evidence window.
        confidence: the function's confidence that the value is right, in ``[0, 1]``.
        function: name of the labelling function.
    """

    doc_id: str
    variable: str
    value: str
    start: int
    end: int
    sentence: str
    context_start: int
    context_end: int
    confidence: float
    function: str

    def __post_init__(self):
        if not (0.0 <= self.confidence <= 1.0) or math.isnan(self.confidence):
            raise ValueError(f"candidate confidence must be in [0, 1], got {self.confidence}")


LabellingFunction = Callable[[Document, Variable], Iterable[Candidate]]
_REGISTRY: dict[str, Callable[..., LabellingFunction]] = {}


def register_labelling_function(name: str):
    """Decorator registering a factory ``(**options) -> labelling function`` under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"a labelling function named {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def labelling_function(name: str, **options) -> LabellingFunction:
    """Build the registered labelling function ``name`` with ``options``.

    Raises:
        KeyError: no function of that name (the message lists the registered ones).
    """
    if name not in _REGISTRY:
        raise KeyError(f"no labelling function {name!r}; registered: {sorted(_REGISTRY)}")
    fn = _REGISTRY[name](**options)
    fn.__dict__.setdefault("function_name", name)
    return fn


def labelling_functions() -> list[str]:
    """Names of the registered labelling functions."""
    return sorted(_REGISTRY)


def make_candidate(
    doc: Document, var: Variable, value: str, start: int, end: int, confidence: float, fn: str
) -> Candidate:
    """A :class:`Candidate` with its sentence and context window taken from ``doc``."""
    if start < 0:
        return Candidate(doc.id, var.name, value, -1, -1, "", -1, -1, confidence, fn)
    s0, s1 = sentence_at(doc.text, start, end)
    c0, c1 = context_window(doc.text, start, end)
    return Candidate(
        doc.id, var.name, value, start, end, doc.text[s0:s1], c0, c1, float(confidence), fn
    )


def _values_in(text: str, a: int, b: int, var: Variable) -> Iterator[tuple[int, int, str]]:
    """``(start, end, canonical value)`` of every value of ``var`` inside ``text[a:b]``."""
    chunk = text[a:b]
    taken: list[tuple[int, int]] = []

    def free(s, e):
        return all(e <= s2 or s >= e2 for s2, e2 in taken)

    if var.pattern:
        for m in re.finditer(var.pattern, chunk):
            g = 1 if m.groups() else 0
            s, e = m.span(g)
            val = var.normalise(m.group(g) or "")
            if val is not None and free(s, e):
                taken.append((s, e))
                yield a + s, a + e, val
    if var.type == "category":
        for cat in sorted(var.categories, key=len, reverse=True):
            for s, e in find_phrase(chunk, cat):
                if free(s, e):
                    taken.append((s, e))
                    yield a + s, a + e, cat
    elif var.type == "date":
        for m in DATE_RE.finditer(chunk):
            val = var.normalise(m.group())
            if val is not None and free(*m.span()):
                taken.append(m.span())
                yield a + m.start(), a + m.end(), val
    elif var.type == "number":
        for m in NUMBER_RE.finditer(chunk):
            val = var.normalise(m.group())
            if val is not None and free(*m.span()):
                taken.append(m.span())
                yield a + m.start(), a + m.end(), val


def _words_between(text: str, a: int, b: int) -> int:
    return len(re.findall(r"\w+", text[a:b])) if b > a else 0


@register_labelling_function("keyword")
def keyword_function(
    *, decay_words: float = 4.0, anchored: float = 0.9, unanchored: float = 0.15
) -> LabellingFunction:
    """Keyword and pattern matching.

    In each sentence, every value of the variable (an allowed category, a number, a date,
    a match of the variable's ``pattern``, or for ``text`` variables the phrase after a
    keyword) becomes a candidate. Its confidence is
    ``unanchored + (anchored - unanchored) * exp(-gap / decay_words)``, with ``gap`` the
    number of words between the value and the nearest keyword in the sentence (a value
    before its keyword counts ``2 * words + 1``). Categories and pattern matches in
    sentences without a keyword get ``unanchored``; numbers and dates need a keyword.
    When a document offers several distinct values for one variable, each value's
    confidence is multiplied by its share of the summed best confidences of all values,
    so competing values lower each other (a lone value keeps its confidence).

    Args:
        decay_words: distance in words over which confidence falls by ``1/e``.
        anchored: confidence of a value right next to a keyword.
        unanchored: confidence of a value with no keyword in its sentence.
    """
    if not 0.0 <= unanchored <= anchored <= 1.0:
        raise ValueError(f"need 0 <= unanchored <= anchored <= 1, got {unanchored} and {anchored}")
    if not decay_words > 0:
        raise ValueError(f"decay_words must be positive, got {decay_words}")

    def fn(doc: Document, var: Variable) -> Iterator[Candidate]:
        found = list(_keyword_candidates(doc, var))
        best: dict[str, float] = {}
        for *_, val, conf in found:
            best[val] = max(best.get(val, 0.0), conf)
        total = sum(best.values())
        for s, e, val, conf in found:
            share = best[val] / total if total > 0 else 1.0
            yield make_candidate(doc, var, val, s, e, conf * share, "keyword")

    def _keyword_candidates(doc: Document, var: Variable):
        text = doc.text
        for a, b in sentences(text):
            kws = [(a + s, a + e) for k in var.keywords for s, e in find_phrase(text[a:b], k)]
            if var.type == "text":
                for _, ke in kws:
                    m = re.match(r"\s*[:\-]?\s*([^,.;:!?\n]+)", text[ke:b])
                    if m and m.group(1).strip():
                        s = ke + m.start(1)
                        e = s + len(m.group(1).rstrip())
                        yield s, e, text[s:e], anchored
                continue
            for s, e, val in _values_in(text, a, b, var):
                if not kws:
                    if var.type in ("number", "date") and not var.pattern:
                        continue
                    conf = unanchored
                else:
                    gaps = [
                        _words_between(text, ke, s)
                        if s >= ke
                        else 2 * _words_between(text, e, ks) + 1
                        for ks, ke in kws
                        if not (ks < e and s < ke)
                    ]
                    gap = min(gaps) if gaps else 0
                    conf = unanchored + (anchored - unanchored) * math.exp(-gap / decay_words)
                yield s, e, val, conf

    fn.function_name = "keyword"
    return fn
