"""Reference points for the studies: a capacity bound, a popular-object baseline and
rates broken down by relation and by frequency.

* **Capacity bound.** A model can memorise about ``bits_per_param`` bits of
  knowledge per parameter (Allen-Zhu & Li 2024, "Physics of Language Models: Part 3.3",
  report about 2 bits per parameter). The knowledge in a graph is at least the bits
  needed to pick each query's object set among its relation's objects,
  ``sum_q log2 C(n_r, k_q)`` (``n_r`` distinct objects of relation ``r``, ``k_q``
  valid objects of query ``q``), so a model with fewer than ``bits / bits_per_param``
  parameters cannot recall every fact.
* **Popular-object baseline.** For unseen queries, answer the relation's most frequent
  training object; a model that does no better has learnt no more than the marginal.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .kg import KnowledgeGraph, Query


def knowledge_bits(kg: KnowledgeGraph) -> float:
    """Bits needed to specify every query's object set: ``sum_q log2 C(n_r, k_q)``.

    Example:
        >>> kg = KnowledgeGraph.from_triples([("a", "r", "x"), ("b", "r", "y")])
        >>> knowledge_bits(kg)  # two queries, each one object out of two
        2.0
    """
    objs: dict[str, set[str]] = {}
    for _, r, o in kg.triples:
        objs.setdefault(r, set()).add(o)
    n_r = {r: len(v) for r, v in objs.items()}
    bits = 0.0
    for s, r in kg.queries():
        k = len(kg.valid_objects(s, r))
        bits += math.log2(math.comb(n_r[r], k))
    return bits


def capacity_bound(kg: KnowledgeGraph, bits_per_param: float = 2.0) -> dict[str, float]:
    """Parameters needed to store ``kg`` at ``bits_per_param`` bits per parameter.

    Returns:
        ``{"bits": ..., "min_params": bits / bits_per_param}``.

    Raises:
        ValueError: a non-positive ``bits_per_param``.
    """
    if not bits_per_param > 0:
        raise ValueError(f"capacity_bound: bits_per_param must be positive, got {bits_per_param}")
    bits = knowledge_bits(kg)
    return {"bits": bits, "min_params": bits / bits_per_param}


def popular_object_baseline(
    train_kg: KnowledgeGraph, full_kg: KnowledgeGraph, queries: Sequence[Query]
) -> float:
    """Hallucination rate of answering each query with its relation's most frequent
    object in ``train_kg`` (ties: the first seen); queries whose relation never
    occurs in training count as hallucinations.

    Raises:
        ValueError: no queries.
    """
    if len(queries) == 0:
        raise ValueError("popular_object_baseline: no queries")
    counts: dict[str, Counter] = {}
    for _, r, o in train_kg.triples:
        counts.setdefault(r, Counter())[o] += 1
    wrong = [
        r not in counts or not full_kg.is_valid(s, r, counts[r].most_common(1)[0][0])
        for s, r in queries
    ]
    return float(np.mean(wrong))


def rate_by(
    kg: KnowledgeGraph,
    queries: Sequence[Query],
    hallucinated: np.ndarray,
    by: str = "relation",
    n_bins: int = 3,
) -> list[dict]:
    """Hallucination rates broken down by relation or by subject / object frequency.

    Args:
        kg: the graph whose facts define the frequencies (usually the training graph).
        queries: the query of each output.
        hallucinated: per-output flags (e.g. ``is_hallucination``).
        by: ``"relation"``; ``"subject"`` (facts with the query's subject); or
            ``"object"`` (training frequency of the query's most frequent valid object).
        n_bins: frequency groups (equal-count bins) for ``"subject"`` and ``"object"``.

    Returns:
        One record per group: ``group``, ``n`` (outputs), ``rate``.

    Raises:
        ValueError: unknown ``by`` or mismatched lengths.
    """
    h = np.asarray(hallucinated, bool)
    if len(queries) != len(h):
        raise ValueError(f"{len(queries)} queries but {len(h)} flags")
    if by == "relation":
        keys = [r for _, r in queries]
        groups = sorted(set(keys))
        return [
            {
                "group": g,
                "n": int(sum(k == g for k in keys)),
                "rate": float(h[np.array(keys) == g].mean()),
            }
            for g in groups
        ]
    if by not in ("subject", "object"):
        raise ValueError(f"rate_by: by must be 'relation', 'subject' or 'object', got {by!r}")
    subj = Counter(s for s, _, _ in kg.triples)
    obj = Counter(o for _, _, o in kg.triples)
    if by == "subject":
        freq = np.array([subj[s] for s, _ in queries], float)
    else:
        freq = np.array(
            [max((obj[o] for o in kg.valid_objects(s, r)), default=0) for s, r in queries], float
        )
    edges = np.unique(np.quantile(freq, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0]])
    idx = np.clip(np.searchsorted(edges, freq, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            lo, hi = edges[b], edges[b + 1]
            out.append(
                {"group": f"{by} freq {lo:g}-{hi:g}", "n": int(m.sum()), "rate": float(h[m].mean())}
            )
    return out
