"""The digits study and the `widelab kernels` command on a tiny configuration."""

import argparse
import dataclasses

import numpy as np
import pytest
from widelab_core.command import ReportContext
from widelab_kernels.cli import command
from widelab_kernels.study import StudyConfig, convergence_figure, run_study

TINY = dataclasses.replace(
    StudyConfig.quick(),
    n_train=60,
    n_test=60,
    width=32,
    channels=4,
    train_steps=5,
    widths=(8, 128),
    ntk_samples=2,
    ntk_points=4,
)


@pytest.fixture(scope="module")
def tiny_result():
    """The study on the tiny configuration, run once for the tests of this file."""
    return run_study(TINY)


def test_study_runs_and_ntk_error_shrinks_with_width(tiny_result):
    res = tiny_result
    assert [r[0] for r in res["rows"]] == ["FC", "CNN"]
    for _, a, b, c in res["rows"]:
        assert 0.0 <= c <= 1.0
        assert a > 0.5 and b > 0.5  # kernels beat chance (0.1) by far even on 60 images
    assert res["ntk_error"][1] < res["ntk_error"][0]
    fig = convergence_figure(res)
    assert fig is not None


def test_command_validates_arguments(capsys):
    parser = argparse.ArgumentParser()
    command.configure(parser)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["digits", "--n-train", "0"])
    assert exc.value.code == 2
    assert "--n-train: expected an integer >= 1, got '0'" in capsys.readouterr().err
    args = parser.parse_args(["digits", "--n-train", "2000"])
    assert command.run(args) == 2
    assert "too many" in capsys.readouterr().err


def test_report_hook_builds_a_section(monkeypatch, tmp_path, tiny_result):
    """The hook runs the quick study (here the tiny one, whose result the test above
    checks and this one reuses) and lays out its section."""
    import widelab_kernels.study as study

    calls = []

    def run_tiny(cfg, progress=None):
        calls.append(cfg)
        return tiny_result

    monkeypatch.setattr(study.StudyConfig, "quick", staticmethod(lambda seed=0: TINY))
    monkeypatch.setattr(study, "run_study", run_tiny)
    sec = command.report(ReportContext(quick=True, out_dir=tmp_path))
    assert "FC NTK accuracy" in sec.metrics
    assert np.isfinite(sec.metrics["NTK rel. error at widest"])
    assert any(kind == "figure" for kind, _ in sec.blocks)
    assert calls == [TINY]
