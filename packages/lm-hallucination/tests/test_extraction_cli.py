"""``widelab lm extract``: make-corpus, run (resumable), export, and user errors."""

import csv

import pytest
from widelab_core import cli


def _rows(path):
    return list(csv.DictReader(path.read_text().splitlines()))


def test_extract_commands_end_to_end(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    assert cli.main(["lm", "extract", "make-corpus", "--entities", "40", "--out", str(corpus)]) == 0
    for name in ("docs.jsonl", "schema.json", "truth.csv"):
        assert (corpus / name).is_file()
    db = tmp_path / "x.db"
    args = ["lm", "extract", "run", "--schema", str(corpus / "schema.json")]
    args += ["--docs", str(corpus / "docs.jsonl"), "--db", str(db)]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert "(0 already done)" in first
    assert cli.main(args) == 0  # resuming a finished run adds nothing
    assert "0 new candidates" in capsys.readouterr().out
    from widelab_lm_hallucination.extraction import Store

    with Store(db) as s:
        sc = s.candidates()[0]
        s.validate(sc.candidate.doc_id, sc.candidate.variable, "accept", candidate_id=sc.id)
    out = tmp_path / "values.csv"
    assert cli.main(["lm", "extract", "export", "--db", str(db), "--out", str(out)]) == 0
    (row,) = _rows(out)
    assert row["value"] == sc.candidate.value and row["source"] == "validated"
    out2 = tmp_path / "all.csv"
    args2 = ["lm", "extract", "export", "--db", str(db), "--out", str(out2)]
    assert cli.main([*args2, "--automatic-threshold", "0.5"]) == 0
    assert len(_rows(out2)) > 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "--db", "{db}", "--out", "{tmp}/x.txt"], "must end in .csv or .jsonl"),
        (["export", "--db", "{db}", "--out", "{tmp}/no/x.csv"], "must exist"),
        (["export", "--db", "{tmp}/missing.db", "--out", "{tmp}/x.csv"], "no such store"),
        (["run", "--schema", "{tmp}/s.json", "--docs", "{tmp}/d.jsonl", "--db", "{db}"], "s.json"),
    ],
)
def test_extract_user_errors_exit_2(tmp_path, capsys, argv, message):
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    argv = [a.format(db=db, tmp=tmp_path) for a in argv]
    assert cli.main(["lm", "extract", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()
