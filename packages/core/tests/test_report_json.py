"""The report's JSON shape, its output checks and the command's light start-up."""

import json
import math
import subprocess
import sys

import pytest
from widelab_core import cli
from widelab_core.command import Command, PlainProgress, ReportContext, ReportSection

CALLS = []


def _hook(ctx):
    CALLS.append(ctx.quick)
    s = ReportSection("demo: a study")
    s.metric("accuracy", 0.9, unit="1", better="higher", se=0.01)
    s.metric("curve", [1.0, 0.5, 0.25], unit="nats", better="lower")
    s.metric("gain", 2.5, summary=False, unit="1", better="higher", note="not converged")
    s.metric("missing", float("nan"), summary=False, note="no run passed")
    for _ in ctx.bar(range(2), desc="demo steps"):
        pass
    return s


def _run(tmp_path, monkeypatch, *extra):
    monkeypatch.setattr(cli, "discover", lambda: [Command(name="demo", help="", report=_hook)])
    return cli.main(["report", "--quick", "--out", str(tmp_path / "r"), *extra])


def test_report_json_shape(tmp_path, monkeypatch, capsys):
    assert _run(tmp_path, monkeypatch) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["widelab"] == data["versions"]["core"]
    assert set(data) >= {"widelab", "versions", "quick", "seed", "seconds", "sections"}
    sec = data["sections"]["demo"]
    assert sec["title"] == "demo: a study" and sec["status"] == "ok"
    assert sec["seconds"] >= 0 and sec["cpu_seconds"] >= 0
    acc = sec["metrics"]["accuracy"]
    assert acc == {
        "value": 0.9,
        "unit": "1",
        "better": "higher",
        "headline": True,
        "se": 0.01,
        "note": "",
    }
    assert sec["metrics"]["curve"]["value"] == [1.0, 0.5, 0.25]
    assert sec["metrics"]["gain"]["headline"] is False
    assert sec["metrics"]["missing"]["value"] is None  # JSON has no NaN
    out = capsys.readouterr()
    assert "gain: 2.5 (not converged; not a headline)" in out.out
    # not a terminal: one plain line per finished step, with the elapsed time
    steps = [line for line in out.err.splitlines() if "demo steps" in line]
    assert len(steps) == 2 and steps[1].startswith("[widelab] demo steps: 2/2 done at ")


def test_installed_report_versions_cover_every_package():
    # Every installed package (all six in the workspace, core alone in its isolated
    # install check) has a version; the workspace test checks that all six are there.
    vers = cli.versions()
    assert {"core", *cli.plugin_entry_points()} == set(vers)
    assert all(v.count(".") >= 1 for v in vers.values())


@pytest.mark.parametrize("value", ["0.1 -> 0.2", {"a": 1}], ids=["arrow-string", "dict"])
def test_metric_values_are_numbers(value):
    with pytest.raises(TypeError, match="must be a number"):
        ReportSection("x").metric("m", value, better="higher")


def test_headline_needs_a_better_direction():
    with pytest.raises(ValueError, match="better"):
        ReportSection("x").metric("m", 1.0)
    with pytest.raises(ValueError, match="better must be"):
        ReportSection("x").metric("m", 1.0, better="up")


def test_metric_converts_numpy_and_non_finite():
    np = pytest.importorskip("numpy")
    s = ReportSection("x").metric("m", np.array([1.5, np.inf]), better="neither")
    assert s.metrics["m"] == [1.5, None]
    assert not any(isinstance(v, float) and math.isnan(v) for v in s.metrics["m"] if v)


@pytest.mark.parametrize("flag", ["--out", "--json"])
def test_unwritable_output_fails_before_any_computation(tmp_path, monkeypatch, capsys, flag):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    CALLS.clear()
    path = str(blocker / "sub" / ("r.json" if flag == "--json" else "dir"))
    args = [flag, path] if flag == "--json" else []
    if flag == "--out":
        monkeypatch.setattr(cli, "discover", lambda: [Command("demo", "", report=_hook)])
        code = cli.main(["report", "--out", path])
    else:
        code = _run(tmp_path, monkeypatch, *args)
    assert code == 2
    assert CALLS == []  # the hook never ran
    err = capsys.readouterr().err
    assert flag in err and "not a folder" in err


def test_out_that_is_a_file_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "r").write_text("x")
    CALLS.clear()
    assert _run(tmp_path, monkeypatch) == 2
    assert CALLS == [] and "not a folder" in capsys.readouterr().err


def test_plain_progress_counts_updates():
    lines = []

    class Sink:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    bar = PlainProgress(total=3, desc="x", file=Sink())
    bar.update()
    bar.update(2)
    bar.close()
    text = "".join(lines)
    assert "x: 1/3 done at" in text and "x: 3/3 done at" in text


def test_report_context_bar_is_plain_off_a_terminal():
    assert isinstance(ReportContext(progress=False).bar(range(1)), PlainProgress)


def test_help_imports_no_package_and_lists_installed_commands():
    code = (
        "import sys\n"
        "from widelab_core import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "    ('jax', 'numpy', 'matplotlib', 'widelab_kernels', 'widelab_bayes',\n"
        "     'widelab_recsys', 'widelab_games', 'widelab_lm_hallucination'))\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "LOADED []" in out
    for name in ("report", *cli.plugin_entry_points()):
        assert f"\n    {name} " in out
    assert "\n    core " not in out  # core has a report section but no subcommand
