"""Capacity bound, popular-object baseline and rate breakdowns against hand counts."""

import math

import numpy as np
import pytest
from widelab_lm_hallucination import (
    KnowledgeGraph,
    capacity_bound,
    knowledge_bits,
    popular_object_baseline,
    rate_by,
)

KG = KnowledgeGraph.from_triples(
    [
        ("a", "born in", "X"),
        ("b", "born in", "X"),
        ("c", "born in", "Y"),
        ("a", "speaks", "en"),
        ("a", "speaks", "fr"),
        ("b", "speaks", "en"),
    ]
)


def test_knowledge_bits_and_capacity_closed_forms():
    # born in: 3 queries, one of 2 cities each -> 3 bits; speaks: {en, fr} (1 of C(2,2)) and
    # {en} (1 of C(2,1)) -> 0 + 1 bits
    assert knowledge_bits(KG) == pytest.approx(3 + math.log2(1) + 1)
    cap = capacity_bound(KG, bits_per_param=2.0)
    assert cap == {"bits": pytest.approx(4.0), "min_params": pytest.approx(2.0)}
    with pytest.raises(ValueError, match="bits_per_param"):
        capacity_bound(KG, 0.0)


def test_popular_object_baseline():
    train = KG.subset(t for t in KG.triples if t[0] != "c")
    # "born in" -> X (2 of 2 training facts); c was born in Y: wrong. "speaks" -> en.
    assert popular_object_baseline(train, KG, [("c", "born in")]) == 1.0
    assert popular_object_baseline(train, KG, [("a", "born in"), ("b", "speaks")]) == 0.0
    assert popular_object_baseline(train, KG, [("c", "knows")]) == 1.0  # unknown relation


def test_rate_by_relation_and_frequency():
    qs = [("a", "born in"), ("b", "born in"), ("c", "born in"), ("a", "speaks")]
    h = np.array([0, 1, 1, 0], bool)
    by_rel = {r["group"]: (r["n"], r["rate"]) for r in rate_by(KG, qs, h, "relation")}
    assert by_rel == {"born in": (3, pytest.approx(2 / 3)), "speaks": (1, 0.0)}
    # subject frequencies: a 3 facts, b 2, c 1; two bins split at the median 2.5
    rows = rate_by(KG, qs, h, "subject", n_bins=2)
    assert sum(r["n"] for r in rows) == 4
    assert [r["rate"] for r in rows] == [1.0, 0.0]  # b, c (rare) wrong; a (frequent) right
    with pytest.raises(ValueError, match="by must be"):
        rate_by(KG, qs, h, "colour")
