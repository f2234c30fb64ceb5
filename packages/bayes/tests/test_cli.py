import argparse

import pytest
from widelab_bayes.cli import bayes_report, command, configure, load_regression_csv, report
from widelab_core.command import ReportContext, ReportSection


def _parser():
    p = argparse.ArgumentParser()
    configure(p)
    return p


def test_subcommands_parse_and_include_issue5():
    p = _parser()
    args = p.parse_args(["sample", "--width", "8", "--method", "plain-ghmc", "--x64"])
    assert args.width == 8 and args.x64 and args.func.__name__ == "_run_sample"
    args = p.parse_args(["sample", "--method", "collapsed-ghmc"])
    assert args.method == "collapsed-ghmc"
    args = p.parse_args(["ess-width", "--widths", "8,16"])
    assert args.widths == [8, 16]
    with pytest.raises(SystemExit):
        p.parse_args(["mmd", "--widths", "8,x"])
    choices = p._subparsers._group_actions[0].choices
    assert {"sample", "ess-width", "mmd", "rejection"} <= set(choices)
    # the approximate-inference studies are wired in
    assert {"sw", "gaussian-dropout", "concrete-dropout", "successor"} <= set(choices)


def test_rejection_command_runs(capsys):
    args = _parser().parse_args(
        ["rejection", "--width", "4", "--proposals", "200", "--n-data", "2", "--noise", "1.0"]
    )
    assert command.run(args) == 0
    out = capsys.readouterr().out
    assert "readout-marginalised" in out and "rate" in out


def test_csv_loader_errors(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("x,y\n0.0,1.0\n1.0,2.0  # comment\n")
    x, y = load_regression_csv(good)
    assert x.shape == (2, 1) and y.shape == (2, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("0.0,1.0\n1.0,abc\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: not a number"):
        load_regression_csv(bad)
    short = tmp_path / "short.csv"
    short.write_text("0.0,1.0\n1.0\n")
    with pytest.raises(ValueError, match=r"short.csv:2: expected 2 columns"):
        load_regression_csv(short)
    nan = tmp_path / "nan.csv"
    nan.write_text("0.0,1.0\n1.0,nan\n")
    with pytest.raises(ValueError, match=r"nan.csv:2: non-finite"):
        load_regression_csv(nan)


@pytest.mark.slow
def test_quick_report_section(tmp_path):
    section = bayes_report(ReportContext(quick=True, out_dir=tmp_path))
    assert isinstance(section, ReportSection)
    kinds = [k for k, _ in section.blocks]
    assert kinds.count("figure") == 3 and "table" in kinds
    gains = [k for k in section.metrics if "ESS/grad gain" in k]
    assert gains
    for name in gains:  # a headline exactly when both runs mixed (R-hat rule)
        detail = section.details[name]
        assert detail["headline"] == (detail["note"] == "")
    assert callable(report)
