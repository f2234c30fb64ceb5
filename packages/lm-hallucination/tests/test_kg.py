"""Knowledge graphs: generator properties, readers, splits and the verifier."""

import numpy as np
import pytest
from widelab_lm_hallucination import (
    KGFormatError,
    KnowledgeGraph,
    is_hallucination,
    make_kg,
    read_kg,
    read_ntriples,
    read_tsv,
    split_kg,
)
from widelab_lm_hallucination.kg import DEFAULT_RELATIONS


def test_generator_is_seeded_and_typed():
    a, b, c = make_kg(120, seed=1), make_kg(120, seed=1), make_kg(120, seed=2)
    assert a.triples == b.triples and a.triples != c.triples
    spec = {r.name: r for r in DEFAULT_RELATIONS}
    for s, r, o in a.triples:
        assert a.entity_types[s] == spec[r].domain
        assert a.entity_types[o] == spec[r].range
    multi = [q for q in a.queries() if len(a.valid_objects(*q)) > 1]
    assert multi and all(spec[q[1]].multi for q in multi)  # single-valued stay single
    # multi-token names: every person name has two words
    assert all(" " in n for n, t in a.entity_types.items() if t == "person")


def test_long_tails():
    kg = make_kg(600, seed=0)
    deg = np.array(list({s: sum(t[0] == s for t in kg.triples) for s, _ in kg.queries()}.values()))
    pop = np.bincount(np.unique([t[2] for t in kg.triples], return_inverse=True)[1])
    # long tails: the most connected subject / most popular object are far above the median
    assert deg.max() >= 3 * np.median(deg)
    assert pop.max() >= 10 * np.median(pop)


def test_homonyms_and_rules():
    kg = make_kg(200, seed=0, homonym_share=0.2, rule_share=1.0)
    persons = [n for n, t in kg.entity_types.items() if t == "person"]
    subjects = {t[0] for t in kg.triples if t[1] == "born in"}
    # homonyms pool objects: some single-valued query now has two valid objects
    assert any(len(kg.valid_objects(s, "born in")) > 1 for s in subjects)
    assert len(subjects) < len(persons)
    assert kg.derived and all((o, r, s) in set(kg.triples) for s, r, o in kg.derived)
    assert not make_kg(200, seed=0).derived


def test_verifier_matches_set_membership_with_prefix_traps():
    kg = KnowledgeGraph.from_triples(
        [
            ("Ann", "knows", "Anna"),
            ("Ann", "knows", "Bo"),
            ("Anna", "knows", "Ann"),
            ("Ann", "born in", "Rome"),
            ("Bo", "born in", "Romeo"),
        ]
    )
    truth = {
        ("Ann", "knows"): {"Anna", "Bo"},
        ("Anna", "knows"): {"Ann"},
        ("Ann", "born in"): {"Rome"},
        ("Bo", "born in"): {"Romeo"},
    }
    cands = ["Ann", "Anna", "Annab", "An", "Bo", "B", "Rome", "Romeo", "Rom", "", "anna"]
    qs, objs, want = [], [], []
    for q in [*truth, ("Bo", "knows"), ("Zed", "born in")]:
        for o in cands:
            qs.append(q)
            objs.append(o)
            want.append(o not in truth.get(q, set()))
            assert kg.is_valid(*q, o) == (o in truth.get(q, set()))
    np.testing.assert_array_equal(is_hallucination(kg, qs, objs), want)
    # unfinished generations are hallucinations even when the text matches
    assert is_hallucination(kg, [("Ann", "born in")], ["Rome"], [False])[0]


def test_tsv_and_ntriples_readers(tmp_path):
    p = tmp_path / "kg.tsv"
    p.write_text("# comment\nAnn\tknows\tBo\n\nBo\tknows\tAnn\nAnn\tknows\tBo\n")
    kg = read_tsv(p)
    assert kg.triples == (("Ann", "knows", "Bo"), ("Bo", "knows", "Ann"))
    n = tmp_path / "kg.nt"
    n.write_text(
        "<http://x.org/Ann_Lee> <http://x.org/rel#born_in> <http://x.org/Rome> .\n"
        '<http://x.org/Ann_Lee> <http://x.org/name> "Ann \\"A\\" Lee"@en .\n'
        "_:b1 <http://x.org/knows> <http://x.org/Ann_Lee> . # trailing comment\n"
        '<http://x.org/Z%C3%BCrich> <http://x.org/alias> "Z\\u00fcri \u00e9t\\u00E9" .\n'
    )
    kg = read_kg(n)
    assert kg.triples == (
        ("Ann Lee", "born in", "Rome"),
        ("Ann Lee", "name", 'Ann "A" Lee'),
        ("b1", "knows", "Ann Lee"),
        ("Zürich", "alias", "Züri été"),
    )
    assert read_kg(p).triples == read_tsv(p).triples


@pytest.mark.parametrize(
    "reader,text,line",
    [
        (read_tsv, "a\tb\tc\na\tb\n", 2),
        (read_tsv, "a\tb\tc\n\n# x\na\t\tc\n", 4),
        (read_ntriples, "<a> <b> <c> .\n<a> <b> .\n", 2),
        (read_ntriples, '<a> <b> "unterminated .\n', 1),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, reader, text, line):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(KGFormatError, match=rf"bad\.txt:{line}:") as e:
        reader(p)
    assert e.value.line == line


@pytest.mark.parametrize("reader", [read_tsv, read_ntriples])
def test_bad_encoding_names_file_and_line(tmp_path, reader):
    p = tmp_path / "latin1.txt"
    good = "<a> <b> <c> .\n" if reader is read_ntriples else "a\tb\tc\n"
    p.write_bytes(good.encode() * 2 + "Z\u00fcrich\tb\tc\n".encode("latin-1"))
    with pytest.raises(
        KGFormatError, match=r"latin1\.txt:3: not UTF-8 text \(byte 0xfc at column 2\)"
    ):
        reader(p)


def test_empty_kg_is_an_error(tmp_path):
    p = tmp_path / "empty.tsv"
    p.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="empty"):
        read_tsv(p)
    with pytest.raises(ValueError, match="empty"):
        KnowledgeGraph(())
    with pytest.raises(ValueError, match="too small"):
        make_kg(3)


def test_splits():
    kg = make_kg(150, seed=0)
    sp = split_kg(kg, 0.2, by="pair", seed=0)
    train = set(sp.train.triples)
    assert len(sp.unseen) == round(0.2 * len(kg.queries()))
    for q in sp.unseen:  # whole pairs held out
        assert not any((q[0], q[1], o) in train for o in kg.valid_objects(*q))
    assert set(sp.seen).isdisjoint(sp.unseen)
    so = split_kg(kg, 0.5, by="object", seed=0)
    for q in so.unseen:  # single objects held out, never all of them
        held = kg.valid_objects(*q) - so.train.valid_objects(*q)
        assert held and so.train.valid_objects(*q)
    kr = make_kg(150, seed=0, rule_share=1.0)
    sd = split_kg(kr, 0.0, by="derived")
    assert not set(sd.train.triples) & kr.derived
    assert set(sd.unseen) == {(s, r) for s, r, _ in kr.derived}
    for s, r, o in kr.derived:  # the rule's premise stays in training
        assert (o, r, s) in set(sd.train.triples)
    with pytest.raises(ValueError, match="rule-derived"):
        split_kg(kg, 0.0, by="derived")
    with pytest.raises(ValueError, match="by must be"):
        split_kg(kg, 0.1, by="subject")
    frac = kg.fraction(0.5, seed=0)
    assert len(frac.queries()) == round(0.5 * len(kg.queries()))
