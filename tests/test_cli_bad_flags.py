"""Every ``widelab`` subcommand turns a bad value of each numeric flag into one line on
stderr and exit code 2, and checks output paths before computing anything.

The flags are discovered from the argparse parsers, so a flag added later is covered.
"""

from __future__ import annotations

import argparse

import pytest
from widelab_core.cli import build_parser, discover, main

# Bad values for a flag whose type carries no ``bad_examples`` (plain int/float or a
# package's own parser): each must still be rejected at parse time.
_FALLBACK = {int: ("abc", "1.5"), float: ("abc", "nan", "inf")}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def _cases():
    """``{subcommand path: [(flag, bad value), ...]}`` over every parser."""
    parser = build_parser(discover())
    cases = {}
    for path, sub in _walk(parser, ()):
        for action in sub._actions:
            if not action.option_strings or action.type in (None, str):
                continue
            bad = getattr(action.type, "bad_examples", None) or _FALLBACK.get(action.type, ("abc",))
            flag = max(action.option_strings, key=len)
            cases.setdefault(path, []).extend((flag, value) for value in bad)
    return parser, cases


PARSER, CASES = _cases()


def test_every_installed_subcommand_has_numeric_flags_checked():
    commands = {path[0] for path in CASES if path}
    # the packages of the workspace that take numeric options
    assert {"bayes", "games", "kernels", "lm", "recsys", "report"} <= commands
    assert sum(len(v) for v in CASES.values()) > 100


@pytest.mark.parametrize("path", list(CASES), ids=lambda p: " ".join(p) or "widelab")
def test_bad_numeric_flags_are_one_line_and_exit_2(path, capsys):
    failures = []
    for flag, value in CASES[path]:
        try:
            PARSER.parse_args([*path, f"{flag}={value}"])
            code = 0
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        if code != 2 or err.count("\n") != 1 or flag not in err or "Traceback" in err:
            failures.append(f"{flag}={value!r}: exit {code}, stderr {err!r}")
    assert not failures, "\n".join(failures)


def _under_a_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    return blocker


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--quick", "--out", "{bad}/report"],
        ["report", "--quick", "--json", "{bad}/figures.json"],
        ["games", "solve", "--out", "{bad}/out"],
        ["games", "audit", "--out", "{bad}/out"],
        ["recsys", "fit", "--out", "{bad}/model.npz"],
        ["recsys", "evaluate", "--json", "{bad}/m.json"],
        ["recsys", "bandit", "--json", "{bad}/r.json"],
        ["kernels", "digits", "--figure", "{bad}/ntk.png"],
        ["lm", "make-kg", "--out", "{bad}/kg.tsv"],
        ["lm", "train", "--out", "{bad}/run"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_output_under_a_file_fails_before_computing(argv, tmp_path, capsys):
    bad = _under_a_file(tmp_path)
    code = main([a.format(bad=bad) for a in argv])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1, captured.err
    assert "blocker" in captured.err
    assert "is a file" in captured.err or "is not a folder" in captured.err
    assert "[widelab]" not in captured.err  # no report hook ran
    assert captured.out == ""


def test_output_folder_that_is_a_file_fails(tmp_path, capsys):
    bad = _under_a_file(tmp_path)
    assert main(["games", "solve", "--out", str(bad)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_recsys_fit_factors_zero_writes_nothing(tmp_path, capsys):
    out = tmp_path / "model.npz"
    with pytest.raises(SystemExit) as exc:
        main(["recsys", "fit", "--factors", "0", "--out", str(out)])
    assert exc.value.code == 2
    assert "--factors" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["recsys", "bandit", "--pools", "0"],
        ["games", "solve", "--restarts", "0"],
        ["bayes", "sample", "--chains", "0"],
        ["bayes", "sample", "--width", "0"],
        ["bayes", "sample", "--samples", "0"],
        ["bayes", "rejection", "--proposals", "0"],
    ],
    ids=lambda a: " ".join(a),
)
def test_issue_flags_rejected(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and argv[2] in err and "got '0'" in err


def test_bayes_missing_data_file(tmp_path, capsys):
    code = main(["bayes", "sample", "--data", str(tmp_path / "missing.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "missing.csv" in err and "no such file" in err
