"""Human-validated extraction: schemas, documents, labelling functions, store, export."""

import csv
import json
import sqlite3
import threading

import pytest
from widelab_lm_hallucination.extraction import (
    Document,
    DocumentError,
    Schema,
    SchemaError,
    Store,
    StoreError,
    Variable,
    automatic_values,
    export,
    export_rows,
    iter_documents,
    labelling_function,
    labelling_functions,
    queue,
    read_schema,
    register_labelling_function,
    run_extraction,
    simulate_validation,
    synthetic_corpus,
    table_quality,
)
from widelab_lm_hallucination.extraction.functions import make_candidate
from widelab_lm_hallucination.kg import make_kg

CITY = Variable("city", "category", categories=("Paris", "Lyon", "New York"), keywords=("born in",))
DATE = Variable("born", "date", keywords=("born on",))
AGE = Variable("age", "number", keywords=("aged",))
JOB = Variable("job", "text", keywords=("works as",))
SCHEMA = Schema((CITY, DATE, AGE, JOB))


def test_schema_toml_and_json(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[[variables]]\nname = "city"\ntype = "category"\ncategories = ["Paris", "Lyon"]\n'
        'keywords = ["born in"]\nquestions = ["Where?"]\nrelation = "born in"\n'
    )
    s = read_schema(toml)
    assert s["city"].categories == ("Paris", "Lyon") and s["city"].relation == "born in"
    js = tmp_path / "s.json"
    js.write_text(s.to_json())
    assert read_schema(js) == s


@pytest.mark.parametrize(
    "content, message",
    [
        ('[[variables]]\nname = "x"\n', r"variables\[0\]: missing field 'type'"),
        ('[[variables]]\nname = "x"\ntype = "colour"\n', "type 'colour' is not one of"),
        ('[[variables]]\nname = "x"\ntype = "category"\n', "needs a non-empty 'categories'"),
        ('[[variables]]\nname = "x"\ntype = "text"\nkeywords = "a"\n', "'keywords' must be a list"),
        ('[[variables]]\nname = "x"\ntype = "text"\nwhat = 1\n', r"unknown field\(s\) \['what'\]"),
        ('[[variables]]\nname = "x"\ntype = "text"\npattern = "("\n', "not a valid regex"),
        (
            '[[variables]]\nname = "x"\ntype = "text"\n[[variables]]\nname = "x"\ntype = "date"\n',
            "repeated",
        ),
        ("variables = 3\n", "needs a 'variables' list"),
        ("[[variables]\n", "invalid TOML"),
    ],
)
def test_schema_errors_name_file_and_field(tmp_path, content, message):
    f = tmp_path / "schema.toml"
    f.write_text(content)
    with pytest.raises(SchemaError, match=message) as e:
        read_schema(f)
    assert str(f) in str(e.value)


def test_variable_normalise():
    assert CITY.normalise("new york") == "New York"
    assert CITY.normalise("Rome") is None
    assert DATE.normalise("3 March 1961") == DATE.normalise("March 3, 1961") == "1961-03-03"
    assert DATE.normalise("1961-02-30") is None
    assert AGE.normalise("1,200") == "1200" and AGE.normalise("twelve") is None


def test_documents_jsonl_txt_folder_and_errors(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"id": 1, "text": "A."}\n\n{"id": "b", "text": "B.", "metadata": {"k": 2}}\n')
    docs = list(iter_documents(f))
    assert [d.id for d in docs] == ["1", "b"] and docs[1].metadata == {"k": 2}
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "x.txt").write_text("Hello.")
    (folder / "y.txt").write_text("World.")
    assert [d.id for d in iter_documents(folder)] == ["x", "y"]
    bad = [
        ('{"id": 1}\n', "d2.jsonl:1: field 'text'"),
        ('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', "d2.jsonl:2: duplicate document id"),
        ('{"id": 1, "text": "a"}\n{nope\n', "d2.jsonl:2: invalid JSON"),
        ("[1, 2]\n", "d2.jsonl:1: each line must be a JSON object"),
    ]
    for content, msg in bad:
        g = tmp_path / "d2.jsonl"
        g.write_text(content)
        with pytest.raises(DocumentError, match=msg):
            list(iter_documents(g))
    g = tmp_path / "d3.jsonl"
    g.write_bytes(b'{"id": 1, "text": "a"}\n{"id": 2, "text": "\xff"}\n')
    with pytest.raises(DocumentError, match="d3.jsonl:2: not UTF-8"):
        list(iter_documents(g))


def test_documents_are_read_lazily(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"id": 1, "text": "A."}\n{broken\n')
    it = iter_documents(f)
    assert next(it).id == "1"  # the bad second line is only met when reached
    with pytest.raises(DocumentError):
        next(it)


def test_keyword_function_spans_and_confidence():
    text = (
        "Ann was born in Paris. Her cousin moved to Lyon. Ann was born on 3 March 1961, "
        "aged 0 then. Ann works as a baker, happily."
    )
    doc = Document("d", text)
    kw = labelling_function("keyword")
    by_var = {v.name: list(kw(doc, v)) for v in SCHEMA.variables}
    city = {c.value: c for c in by_var["city"]}
    assert set(city) == {"Paris", "Lyon"}
    paris = city["Paris"]
    assert text[paris.start : paris.end] == "Paris"
    assert paris.sentence == "Ann was born in Paris."
    assert paris.context_start <= paris.start < paris.end <= paris.context_end
    # anchored next to the keyword vs a mention with no keyword in its sentence
    assert paris.confidence > 0.5 > city["Lyon"].confidence
    assert [c.value for c in by_var["born"]] == ["1961-03-03"]
    ages = sorted(by_var["age"], key=lambda c: -c.confidence)
    assert ages[0].value == "0"  # right after the keyword; the date's numbers come before it
    assert {c.value for c in ages[1:]} == {"3", "1961"}
    assert [c.value for c in by_var["job"]] == ["a baker"]


def test_keyword_confidence_falls_with_competing_values():
    kw = labelling_function("keyword")
    lone = list(kw(Document("a", "Ann was born in Paris."), CITY))
    both = list(kw(Document("b", "Ann was born in Paris. Bo was born in Lyon."), CITY))
    assert len(lone) == 1 and len(both) == 2
    assert lone[0].confidence == pytest.approx(0.9)
    assert all(c.confidence == pytest.approx(0.45) for c in both)


def test_registry_extends_and_rejects_duplicates():
    name = "test-upper-words"

    @register_labelling_function(name)
    def factory():
        def fn(doc, var):
            for w in doc.text.split():
                if w.isupper():
                    s = doc.text.index(w)
                    yield make_candidate(doc, var, w, s, s + len(w), 0.7, name)

        return fn

    assert name in labelling_functions()
    var = Variable("code", "text")
    (c,) = labelling_function(name)(Document("d", "the code is XYZ today"), var)
    assert (c.value, c.start, c.end) == ("XYZ", 12, 15)
    with pytest.raises(ValueError, match="already registered"):
        register_labelling_function(name)(factory)
    with pytest.raises(KeyError, match="no labelling function 'nope'"):
        labelling_function("nope")


def _docs():
    return [
        Document("d1", "Ann was born in Paris. Ann was born on 1 May 1950."),
        Document("d2", "Bo was born in Lyon. Bo moved to Paris."),
        Document("d3", "Cy was born in New York. Cy works as a pilot."),
    ]


def test_store_resumes_without_duplicates(tmp_path):
    db = tmp_path / "x.db"
    fns = {"keyword": labelling_function("keyword")}
    seen = []

    class Stop(Exception):
        pass

    def interrupt(doc):
        seen.append(doc.id)
        if len(seen) == 2:
            raise Stop

    with Store(db, SCHEMA) as s, pytest.raises(Stop):
        run_extraction(s, _docs(), fns, progress=False, on_document=interrupt, chunk_size=1)
    with Store(db, SCHEMA) as s:
        assert s.document_ids() == ["d1", "d2"]
        n_before = len(s.candidates())
        st = run_extraction(s, _docs(), fns, progress=False)
        assert (st.documents, st.skipped) == (3, 2)
        again = run_extraction(s, _docs(), fns, progress=False)
        assert again.candidates == 0 and again.skipped == 3
        total = len(s.candidates())
    with Store(tmp_path / "fresh.db", SCHEMA) as s:
        run_extraction(s, _docs(), fns, progress=False)
        assert len(s.candidates()) == total > n_before
    rows = sqlite3.connect(db).execute(
        'SELECT doc_id, variable, value, start, "end", function, COUNT(*) FROM candidates '
        "GROUP BY 1, 2, 3, 4, 5, 6 HAVING COUNT(*) > 1"
    )
    assert rows.fetchall() == []


def test_store_refuses_other_schema_and_version(tmp_path):
    db = tmp_path / "x.db"
    Store(db, SCHEMA).close()
    with pytest.raises(StoreError, match="another extraction schema"):
        Store(db, Schema((CITY,)))
    assert Store(db).schema == SCHEMA
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="store version 99"):
        Store(db)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not an extraction database"):
        Store(junk, SCHEMA)


def test_validate_checks_its_input(tmp_path):
    with Store(tmp_path / "x.db", SCHEMA) as s:
        run_extraction(s, _docs(), {"keyword": labelling_function("keyword")}, progress=False)
        paris = next(sc for sc in s.candidates("d1", "city") if sc.candidate.value == "Paris")
        lyon = next(sc for sc in s.candidates("d2", "city") if sc.candidate.value == "Lyon")
        cases = [
            (dict(decision="maybe", candidate_id=paris.id), "decision must be one of"),
            (dict(decision="accept"), "needs a candidate_id"),
            (dict(decision="accept", candidate_id=lyon.id), "belongs to"),
            (dict(decision="accept", candidate_id=10**6), "no candidate with id"),
            (dict(decision="value", value="Rome"), "not a valid city"),
            (dict(decision="none", seconds=-1.0), "seconds must be"),
        ]
        for kw, msg in cases:
            with pytest.raises(StoreError, match=msg):
                s.validate("d1", "city", **kw)
        with pytest.raises(StoreError, match="no document 'zz'"):
            s.validate("zz", "city", "none")
        with pytest.raises(StoreError, match="no variable 'height'"):
            s.validate("d1", "height", "none")
        assert s.validations() == []
        v = s.validate("d1", "city", "value", value="paris", seconds=2.5)
        assert v.value == "Paris"


def test_two_writers_at_once(tmp_path):
    db = tmp_path / "x.db"
    with Store(db, SCHEMA) as s:
        run_extraction(s, _docs()[:1], {"keyword": labelling_function("keyword")}, progress=False)
    errors = []

    def validator():
        try:
            with Store(db) as s:
                for _ in range(40):
                    s.validate("d1", "age", "none", seconds=0.1)
        except Exception as e:  # pragma: no cover - the failure is reported below
            errors.append(e)

    def pipeline():
        try:
            with Store(db) as s:
                docs = [Document(f"p{i}", f"Dee was born in Lyon {i}.") for i in range(40)]
                run_extraction(
                    s,
                    docs,
                    {"keyword": labelling_function("keyword")},
                    progress=False,
                    chunk_size=1,
                )
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=validator), threading.Thread(target=pipeline)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store(db) as s:
        assert len(s.validations()) == 40 and len(s.document_ids()) == 41


def test_queue_policies_and_export(tmp_path):
    with Store(tmp_path / "x.db", SCHEMA) as s:
        run_extraction(s, _docs(), {"keyword": labelling_function("keyword")}, progress=False)
        auto = automatic_values(s, 0.5)
        conf = queue(s, "confidence")
        assert len(conf) == len(s.items()) == 12
        # automatic extractions come first, least confident first; empty items last
        best = {}
        for sc in s.candidates():
            k = (sc.candidate.doc_id, sc.candidate.variable)
            best[k] = max(best.get(k, 0), sc.candidate.confidence)
        head = [it for it in conf if it in auto]
        assert conf[: len(head)] == head
        assert [best[it] for it in head] == sorted(best[it] for it in head)
        assert all(it not in best for it in conf[-3:])
        assert queue(s, "document")[:4] == [("d1", n) for n in SCHEMA.names()]
        with pytest.raises(ValueError, match="policy must be one of"):
            queue(s, "random")
        paris = next(sc for sc in s.candidates("d1", "city") if sc.candidate.value == "Paris")
        s.validate("d1", "city", "accept", candidate_id=paris.id, who="ann", seconds=3.0)
        s.validate("d1", "job", "none", who="ann", seconds=1.0)
        s.validate("d2", "age", "value", value="41", who="bo", seconds=7.0)
        assert ("d1", "city") not in queue(s, "confidence")
        n = export(s, tmp_path / "out.csv")
        rows = list(csv.DictReader((tmp_path / "out.csv").read_text().splitlines()))
        assert n == len(rows) == 3
        r = rows[0]
        assert (r["doc_id"], r["variable"], r["value"], r["decision"]) == (
            "d1",
            "city",
            "Paris",
            "accept",
        )
        assert (r["function"], r["validator"], r["start"], r["end"]) == (
            "keyword",
            "ann",
            "16",
            "21",
        )
        assert r["sentence"] == "Ann was born in Paris."
        assert [x["value"] for x in rows[1:]] == ["", "41"]
        export(s, tmp_path / "out.jsonl", automatic_threshold=0.5)
        lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert {x["source"] for x in lines} == {"validated", "automatic"}
        assert len(lines) == 3 + sum(
            1 for it in auto if it not in {("d1", "city"), ("d1", "job"), ("d2", "age")}
        )
        with pytest.raises(ValueError, match=r"must end in \.csv or \.jsonl"):
            export(s, tmp_path / "out.txt")
        assert export_rows(s)[0]["seconds"] == 3.0


def test_effort_study_on_synthetic_corpus():
    corpus = synthetic_corpus(make_kg(60, seed=2), seed=2)
    n = len(corpus.truth)
    fns = {"keyword": labelling_function("keyword")}
    curves = {}
    for policy in ("confidence", "document"):
        with Store(":memory:", corpus.schema) as s:
            run_extraction(s, corpus.documents, fns, progress=False)
            curves[policy] = simulate_validation(s, corpus.truth, policy)
            assert len(s.resolved()) == n
    for c in curves.values():
        # validating everything with a perfect person recovers the truth exactly
        assert (c.precision[-1], c.recall[-1]) == (1.0, 1.0)
        assert c.decisions[-1] == n and (c.seconds[1:] > c.seconds[:-1]).all()
    conf = curves["confidence"]
    # checking the least confident automatic values first raises precision monotonically
    k = int((conf.precision < 1.0).sum())
    assert (conf.precision[1:k] >= conf.precision[: k - 1] - 1e-12).all()
    assert conf.effort_for_precision(0.99)[0] < curves["document"].effort_for_precision(0.99)[0]
    assert table_quality({}, corpus.truth) == (1.0, 0.0)
