"""Knowledge graphs: a seeded synthetic generator, TSV / N-Triples readers, splits.

The synthetic graph follows the set-up of Hron, Culp, Elsayed et al., "Training
Language Models on the Knowledge Graph: Insights on Hallucinations and Their
Detectability" (COLM 2024, Sec. 2): typed entities connected by typed relations, some
single-valued (one object per subject) and some multi-valued, with a long-tailed
number of facts per subject and a long-tailed popularity of objects.

Validity is decided on *names*: the valid objects of a query ``(subject, relation)``
are every object name that any entity carrying that subject name has for the
relation. With homonyms two entities share a name and their objects pool together,
which is exactly what a language model that only sees names can know.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

Triple = tuple[str, str, str]
Query = tuple[str, str]


class KGFormatError(ValueError):
    """A triples file has a malformed line; the message names the file and line."""

    def __init__(self, path: str | Path, line: int, detail: str):
        self.path = str(path)
        self.line = line
        super().__init__(f"{path}:{line}: {detail}")


@dataclasses.dataclass(frozen=True)
class RelationSpec:
    """A typed relation of the synthetic graph.

    Attributes:
        name: relation name as it appears in the text.
        domain: entity type of the subjects.
        range: entity type of the objects.
        multi: whether a subject may have several objects for it.
        symmetric: ``(a, r, b)`` implies ``(b, r, a)`` (the rule used for derived facts).
    """

    name: str
    domain: str
    range: str
    multi: bool = False
    symmetric: bool = False


DEFAULT_TYPES: dict[str, float] = {
    "person": 0.6,
    "city": 0.15,
    "company": 0.1,
    "language": 0.05,
    "country": 0.1,
}

DEFAULT_RELATIONS: tuple[RelationSpec, ...] = (
    RelationSpec("born in", "person", "city"),
    RelationSpec("works for", "person", "company"),
    RelationSpec("speaks", "person", "language", multi=True),
    RelationSpec("friend of", "person", "person", multi=True, symmetric=True),
    RelationSpec("located in", "city", "country"),
    RelationSpec("based in", "company", "city"),
)


@dataclasses.dataclass(frozen=True)
class KnowledgeGraph:
    """A set of ``(subject, relation, object)`` name triples.

    Attributes:
        triples: the distinct triples, in a fixed order.
        entity_types: type of each entity name (empty for graphs read from files).
        derived: the triples that a rule derives from other triples (symmetry).
    """

    triples: tuple[Triple, ...]
    entity_types: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)
    derived: frozenset[Triple] = frozenset()

    def __post_init__(self):
        if len(self.triples) == 0:
            raise ValueError("knowledge graph is empty: it needs at least one triple")
        index: dict[Query, set[str]] = {}
        for t in self.triples:
            if len(t) != 3 or not all(isinstance(x, str) and x for x in t):
                raise ValueError(f"triple {t!r} must be three non-empty strings")
            index.setdefault((t[0], t[1]), set()).add(t[2])
        object.__setattr__(self, "_index", {k: frozenset(v) for k, v in index.items()})

    @classmethod
    def from_triples(cls, triples: Iterable[Sequence[str]], **kw) -> KnowledgeGraph:
        """Build a graph from any iterable of triples, dropping duplicates (order kept)."""
        seen: dict[Triple, None] = {}
        for t in triples:
            seen[tuple(t)] = None  # type: ignore[index]
        return cls(tuple(seen), **kw)

    def __len__(self) -> int:
        return len(self.triples)

    def queries(self) -> list[Query]:
        """The distinct ``(subject, relation)`` pairs, in order of first appearance."""
        return list(self._index)  # type: ignore[attr-defined]

    def valid_objects(self, subject: str, relation: str) -> frozenset[str]:
        """The object names the graph holds for ``(subject, relation)`` (empty if none)."""
        return self._index.get((subject, relation), frozenset())  # type: ignore[attr-defined]

    def is_valid(self, subject: str, relation: str, obj: str) -> bool:
        """Exact-match verifier: is ``obj`` one of the valid objects of the query?

        A hallucination (Hron et al. 2024, Sec. 2.2) is a generated object for which
        this is False. The comparison is on whole strings, so ``"Ann"`` is not a valid
        answer when only ``"Anna"`` is.
        """
        return obj in self.valid_objects(subject, relation)

    def relations(self) -> list[str]:
        """Distinct relation names."""
        return list(dict.fromkeys(t[1] for t in self.triples))

    def entities(self) -> list[str]:
        """Distinct names appearing as subject or object."""
        names = dict.fromkeys(t[0] for t in self.triples)
        names.update(dict.fromkeys(t[2] for t in self.triples))
        return list(names)

    def subset(self, triples: Iterable[Triple]) -> KnowledgeGraph:
        """A graph holding only ``triples`` (types and derived flags carried over)."""
        ts = tuple(triples)
        return KnowledgeGraph(
            ts, entity_types=self.entity_types, derived=self.derived.intersection(ts)
        )

    def fraction(self, frac: float, *, seed: int = 0) -> KnowledgeGraph:
        """Keep a random ``frac`` of the queries with all their objects (data-fraction study)."""
        if not 0.0 < frac <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {frac}")
        qs = self.queries()
        rng = np.random.default_rng(seed)
        keep = {qs[i] for i in rng.permutation(len(qs))[: max(1, round(frac * len(qs)))]}
        return self.subset(t for t in self.triples if (t[0], t[1]) in keep)

    def to_tsv(self) -> str:
        """The triples as tab-separated lines (readable by :func:`read_tsv`)."""
        return "".join(f"{s}\t{r}\t{o}\n" for s, r, o in self.triples)


# ---------------------------------------------------------------------------
# Synthetic generator

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "br"]
_VOWELS = ["a", "e", "i", "o", "u", "ia", "ei"]


def _word(rng: np.random.Generator, n_syll: int) -> str:
    return "".join(
        _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
        for _ in range(n_syll)
    ).capitalize()


def _names(rng: np.random.Generator, n: int, words: int, taken: set[str]) -> list[str]:
    out = []
    while len(out) < n:
        name = " ".join(_word(rng, int(rng.integers(1, 3))) for _ in range(words))
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(w / w.sum())


def make_kg(
    n_entities: int = 200,
    *,
    seed: int = 0,
    relations: Sequence[RelationSpec] = DEFAULT_RELATIONS,
    types: dict[str, float] | None = None,
    degree_exponent: float = 1.2,
    popularity_exponent: float = 1.0,
    max_multi: int = 6,
    homonym_share: float = 0.0,
    rule_share: float = 0.0,
) -> KnowledgeGraph:
    """Draw a synthetic knowledge graph (Hron et al. 2024, Sec. 2.1 at small scale).

    Each subject gets an activity ``a ~ Pareto(degree_exponent)`` (long-tailed degrees);
    it takes each relation of its type with probability ``min(1, 0.5 * a)``, a
    multi-valued relation with ``1 + Poisson(a)`` objects (at most ``max_multi``).
    Objects are drawn with Zipf weights ``1 / rank ** popularity_exponent`` over the
    entities of the relation's range type (long-tailed popularity). Persons have
    two-word names, everything else one word.

    Args:
        n_entities: number of entities (split across ``types`` by their weights).
        seed: seed of every random choice.
        relations: the typed relations.
        types: entity type -> share of entities (default: persons, cities, ...).
        degree_exponent: tail exponent of the subject activity.
        popularity_exponent: Zipf exponent of object popularity.
        max_multi: cap on the objects of a multi-valued relation.
        homonym_share: share of persons renamed to another person's name.
        rule_share: for symmetric relations, the share of facts ``(a, r, b)`` whose
            converse ``(b, r, a)`` is added as a rule-derived fact.

    Returns:
        The graph; ``derived`` holds the rule-derived triples.

    Raises:
        ValueError: bad sizes or shares, or a relation whose types have no entities.
    """
    types = dict(DEFAULT_TYPES if types is None else types)
    if n_entities < 2 * len(types):
        raise ValueError(f"n_entities={n_entities} is too small for {len(types)} entity types")
    for name, v in (("homonym_share", homonym_share), ("rule_share", rule_share)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    rng = np.random.default_rng(seed)
    total = sum(types.values())
    taken: set[str] = set()
    by_type: dict[str, list[str]] = {}
    entity_types: dict[str, str] = {}
    for t, share in types.items():
        n = max(2, round(n_entities * share / total))
        by_type[t] = _names(rng, n, 2 if t == "person" else 1, taken)
    # Homonyms: some entities display another entity's name (ids stay distinct).
    display: dict[tuple[str, int], str] = {}
    for t, names in by_type.items():
        for i, nm in enumerate(names):
            display[(t, i)] = nm
            entity_types[nm] = t
    persons = by_type.get("person", [])
    n_hom = round(homonym_share * len(persons))
    if n_hom:
        for i in rng.choice(len(persons), n_hom, replace=False):
            j = int(rng.integers(len(persons)))
            display[("person", int(i))] = persons[j]
    weights = {t: _zipf_weights(len(v), popularity_exponent, rng) for t, v in by_type.items()}
    triples: list[Triple] = []
    drawn: list[Triple] = []
    derived: set[Triple] = set()
    for rel in relations:
        if rel.domain not in by_type or rel.range not in by_type:
            raise ValueError(f"relation {rel.name!r}: no entities of type {rel.domain}/{rel.range}")
    for t, names in by_type.items():
        for i in range(len(names)):
            activity = rng.pareto(degree_exponent) + 0.2
            subj = display[(t, i)]
            for rel in relations:
                if rel.domain != t or rng.random() > min(1.0, 0.5 * activity):
                    continue
                k = 1
                if rel.multi:
                    k = min(max_multi, 1 + int(rng.poisson(activity)))
                w = weights[rel.range]
                objs = rng.choice(len(w), size=min(k, len(w)), replace=False, p=w)
                for j in objs:
                    if rel.range == t and int(j) == i:
                        continue
                    obj = display[(rel.range, int(j))]
                    triples.append((subj, rel.name, obj))
                    drawn.append((subj, rel.name, obj))
                    if rel.symmetric and rule_share > 0 and rng.random() < rule_share:
                        conv = (obj, rel.name, subj)
                        triples.append(conv)
                        derived.add(conv)
    kg = KnowledgeGraph.from_triples(triples, entity_types=entity_types)
    # a converse that was also drawn on its own is a base fact, not a derived one
    return dataclasses.replace(kg, derived=frozenset(derived - set(drawn)))


# ---------------------------------------------------------------------------
# Readers


def _text_lines(path: str | Path):
    """``(line number, text)`` of a UTF-8 file; a line that is not UTF-8 raises
    :class:`KGFormatError` naming the file, line and byte."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise KGFormatError(
                    path, n, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                ) from None


def read_tsv(path: str | Path) -> KnowledgeGraph:
    """Read ``subject<TAB>relation<TAB>object`` lines; blank lines and ``#`` comments skip.

    Raises:
        KGFormatError: a line without exactly three non-empty fields, or not UTF-8
            (file and line named).
        ValueError: the file holds no triples.
    """
    triples = []
    for n, line in _text_lines(path):
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise KGFormatError(path, n, f"expected 3 tab-separated fields, got {len(parts)}")
        parts = [p.strip() for p in parts]
        if not all(parts):
            raise KGFormatError(path, n, "empty subject, relation or object")
        triples.append(tuple(parts))
    if not triples:
        raise ValueError(f"{path}: knowledge graph is empty (no triples found)")
    return KnowledgeGraph.from_triples(triples)


_IRI = r"<([^>\s]*)>"
_BNODE = r"_:([A-Za-z0-9_.\-]+)"
_LIT = r'"((?:[^"\\]|\\.)*)"(?:@[A-Za-z\-]+|\^\^<[^>]*>)?'
_NT_LINE = re.compile(
    rf"^\s*(?:{_IRI}|{_BNODE})\s+{_IRI}\s+(?:{_IRI}|{_BNODE}|{_LIT})\s*\.\s*(?:#.*)?$"
)


_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_ESC = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[tbnrf\"'\\])")


def _unescape(text: str) -> str:
    """N-Triples string escapes (``\\t``, ``\\"``, ``\\uXXXX``, ...); other text as is."""
    return _ESC.sub(lambda m: chr(int(m[1][1:], 16)) if m[1][0] in "uU" else _ESCAPES[m[1]], text)


def _local_name(iri: str) -> str:
    tail = re.split(r"[/#]", iri.rstrip("/#"))[-1] or iri
    return urllib.parse.unquote(tail).replace("_", " ")


def read_ntriples(path: str | Path) -> KnowledgeGraph:
    """Read an N-Triples file; IRIs become their local names (``_`` read as a space).

    Raises:
        KGFormatError: a line that is not ``subject predicate object .``, or not UTF-8
            (file and line).
        ValueError: the file holds no triples.
    """
    triples = []
    for n, line in _text_lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _NT_LINE.match(line)
        if m is None:
            raise KGFormatError(path, n, "not an N-Triples statement '<s> <p> <o> .'")
        s_iri, s_b, p_iri, o_iri, o_b, o_lit = m.groups()
        s = _local_name(s_iri) if s_iri is not None else s_b
        o = (
            _local_name(o_iri)
            if o_iri is not None
            else (o_b if o_b is not None else _unescape(o_lit))
        )
        p = _local_name(p_iri)
        if not (s and p and o):
            raise KGFormatError(path, n, "empty subject, predicate or object")
        triples.append((s, p, o))
    if not triples:
        raise ValueError(f"{path}: knowledge graph is empty (no triples found)")
    return KnowledgeGraph.from_triples(triples)


def read_kg(path: str | Path) -> KnowledgeGraph:
    """Read a ``.nt`` file with :func:`read_ntriples`, anything else with :func:`read_tsv`."""
    return read_ntriples(path) if str(path).endswith(".nt") else read_tsv(path)


# ---------------------------------------------------------------------------
# Splits


@dataclasses.dataclass(frozen=True)
class KGSplit:
    """Training graph and evaluation queries.

    Attributes:
        full: the whole graph (the verifier's ground truth).
        train: the triples the language model is trained on.
        seen: queries with at least one training triple.
        unseen: queries with at least one held-out triple (answers never trained on
            for ``by="pair"``; for ``by="object"`` some objects were seen).
    """

    full: KnowledgeGraph
    train: KnowledgeGraph
    seen: tuple[Query, ...]
    unseen: tuple[Query, ...]


def split_kg(
    kg: KnowledgeGraph, unseen_fraction: float = 0.1, *, by: str = "pair", seed: int = 0
) -> KGSplit:
    """Hold out whole pairs (``by="pair"``), single objects, or rule-derived facts.

    ``by="derived"`` holds out rule-derived triples (all of them when
    ``unseen_fraction`` is 0), so the unseen rate measures whether the model infers
    facts a rule implies from trained ones.

    Args:
        kg: the full graph.
        unseen_fraction: share of pairs, of triples of multi-valued pairs, or of
            derived triples held out.
        by: ``"pair"``, ``"object"`` or ``"derived"``.
        seed: seed of the choice.

    Returns:
        A :class:`KGSplit`.

    Raises:
        ValueError: unknown ``by`` or a fraction outside ``[0, 1)``.
    """
    if not 0.0 <= unseen_fraction < 1.0:
        raise ValueError(f"unseen_fraction must be in [0, 1), got {unseen_fraction}")
    rng = np.random.default_rng(seed)
    qs = kg.queries()
    if by == "pair":
        n_out = round(unseen_fraction * len(qs))
        held = {qs[i] for i in rng.permutation(len(qs))[:n_out]}
        train = [t for t in kg.triples if (t[0], t[1]) not in held]
        unseen = tuple(q for q in qs if q in held)
    elif by == "object":
        multi = [t for t in kg.triples if len(kg.valid_objects(t[0], t[1])) > 1]
        n_out = round(unseen_fraction * len(multi))
        held_t = {multi[i] for i in rng.permutation(len(multi))[:n_out]}
        # never hold out every object of a query
        per_q: dict[Query, int] = {}
        kept_out = set()
        for t in sorted(held_t):
            q = (t[0], t[1])
            if per_q.get(q, 0) + 1 < len(kg.valid_objects(*q)):
                per_q[q] = per_q.get(q, 0) + 1
                kept_out.add(t)
        train = [t for t in kg.triples if t not in kept_out]
        unseen = tuple(dict.fromkeys((t[0], t[1]) for t in kg.triples if t in kept_out))
    elif by == "derived":
        if not kg.derived:
            raise ValueError("by='derived' needs rule-derived facts (make_kg(rule_share=...))")
        held_d = set(kg.derived)
        n_out = round(unseen_fraction * len(held_d)) if unseen_fraction > 0 else len(held_d)
        order = sorted(held_d)
        kept_out = {order[i] for i in rng.permutation(len(order))[:n_out]}
        train = [t for t in kg.triples if t not in kept_out]
        unseen = tuple(dict.fromkeys((t[0], t[1]) for t in kg.triples if t in kept_out))
    else:
        raise ValueError(f"by must be 'pair', 'object' or 'derived', got {by!r}")
    if not train:
        raise ValueError("the split left no training triples")
    train_kg = kg.subset(train)
    return KGSplit(kg, train_kg, tuple(train_kg.queries()), unseen)
