import json

import pytest
from widelab_core import cli
from widelab_core.command import Command, ReportSection, atomic_write


def test_discover_finds_core_command():
    names = [c.name for c in cli.discover()]
    assert "core" in names


def test_help_lists_report(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "report" in capsys.readouterr().out


def _fake_hook(ctx):
    s = ReportSection("fake")
    s.text("<b>escaped</b>").metric("answer", 42.0, unit="s", better="lower")
    s.table(["a", "b"], [[1, 2.5]])
    return s


def _failing_hook(ctx):
    raise RuntimeError("boom")


def test_report_writes_html_and_json(tmp_path, monkeypatch, capsys):
    cmds = [
        Command(name="fake", help="x", report=_fake_hook),
        Command(name="bad", help="y", report=_failing_hook),
    ]
    monkeypatch.setattr(cli, "discover", lambda: cmds)
    code = cli.main(["report", "--quick", "--out", str(tmp_path / "r")])
    assert code == 1  # the failing hook is reported, not hidden
    page = (tmp_path / "r" / "report.html").read_text()
    assert "&lt;b&gt;escaped&lt;/b&gt;" in page
    assert "boom" in page
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["sections"]["fake"]["metrics"]["answer"]["value"] == 42.0
    assert data["sections"]["fake"]["status"] == "ok"
    assert data["sections"]["bad"]["status"] == "failed"
    assert "answer: 42 s" in capsys.readouterr().out


def test_report_hook_may_return_several_sections(tmp_path, monkeypatch):
    def two(ctx):
        return [
            ReportSection("one").metric("a", 1, better="higher"),
            ReportSection("two").metric("b", 2, better="lower"),
        ]

    monkeypatch.setattr(cli, "discover", lambda: [Command(name="two", help="", report=two)])
    assert cli.main(["report", "--out", str(tmp_path), "--json", str(tmp_path / "h.json")]) == 0
    data = json.loads((tmp_path / "h.json").read_text())
    assert set(data["sections"]) == {"two"}  # keyed by package, parts merged
    assert data["sections"]["two"]["parts"] == ["one", "two"]
    assert set(data["sections"]["two"]["metrics"]) == {"a", "b"}


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "old")

    with pytest.raises(TypeError):
        atomic_write(target, 123)  # not str/bytes: the write fails
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_uses_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "g.txt", b"data")
    finally:
        os.umask(umask)
    assert (tmp_path / "g.txt").stat().st_mode & 0o777 == 0o644


def test_report_only_with_unknown_name_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "discover", lambda: [Command(name="fake", help="", report=_fake_hook)])
    assert cli.main(["report", "--only", "fake,nosuch", "--out", str(tmp_path / "r")]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written
