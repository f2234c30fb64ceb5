"""lm-hallucination through the ``widelab`` command: discovery, make-kg and the quick report."""

import json

import pytest
from widelab_core import cli


@pytest.mark.integration
def test_widelab_lm_make_kg(tmp_path, capsys):
    out = tmp_path / "kg.tsv"
    assert cli.main(["lm", "make-kg", "--entities", "30", "--seed", "1", "--out", str(out)]) == 0
    from widelab_lm_hallucination import read_tsv

    kg = read_tsv(out)
    assert len(kg) > 20 and "triples" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.slow
def test_quick_report_section(tmp_path):
    rc = cli.main(
        [
            "report",
            "--quick",
            "--only",
            "lm",
            "--out",
            str(tmp_path),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert rc == 0
    figures = json.loads((tmp_path / "r.json").read_text())
    text = json.dumps(figures)
    assert "lm best seen hallucination rate" in text
    assert "extraction time to 0.99 precision / manual time" in text
