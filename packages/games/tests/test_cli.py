"""The ``widelab games`` command end to end on small synthetic data."""

import json

from widelab_core.cli import main
from widelab_games.cli import command


def test_command_registered():
    assert command.name == "games" and command.run is not None and command.report is not None


def test_solve_writes_equilibria(tmp_path, capsys):
    rc = main(
        ["games", "solve", "--size", "60,40", "--regs", "0.1", "--n", "4", "--taus", "1,0.3"]
        + ["--restarts", "2", "--max-steps", "300", "--out", str(tmp_path)]
    )
    assert rc == 0
    out = json.loads((tmp_path / "equilibria.json").read_text())
    assert [r["tau"] for r in out["results"]] == [1.0, 0.3]
    first = out["results"][0]
    assert len(first["profiles"]) == 2 and len(first["profiles"][0]) == 4
    assert set(first["status"]) <= {"local_nash", "not_nash", "degenerate", "not_critical"}
    assert "local_nash" in capsys.readouterr().out


def test_audit_writes_table_and_figure(tmp_path):
    rc = main(
        ["games", "audit", "--size", "60,40", "--regs", "0.1", "--models", "pmf"]
        + ["--ns", "4", "--taus", "1,0.3", "--restarts", "2", "--max-steps", "300"]
        + ["--out", str(tmp_path)]
    )
    assert rc == 0
    rows = json.loads((tmp_path / "audit.json").read_text())
    assert [r["tau"] for r in rows] == [1.0, 0.3]
    assert (tmp_path / "tau_sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_exit_code(tmp_path, capsys):
    assert main(["games", "solve", "--data", "movielens", "--out", str(tmp_path)]) == 2
    assert "needs a path" in capsys.readouterr().err
    rc = main(["games", "solve", "--taus", "0.1,1", "--regs", "0.1", "--size", "30,20"])
    assert rc == 2
    assert "strictly decreasing" in capsys.readouterr().err
    assert not (tmp_path / "equilibria.json").exists()
