import argparse
import json

import numpy as np
import pytest
from widelab_recsys import TwoStageRecommender
from widelab_recsys.cli import command


def _parse(argv):
    parser = argparse.ArgumentParser(prog="widelab recsys")
    command.configure(parser)
    return parser.parse_args(argv)


SMALL = [
    "--users",
    "60",
    "--items",
    "50",
    "--pools",
    "2",
    "--k",
    "5",
    "--factors",
    "4",
    "--ranker-epochs",
    "1",
]


def test_fit_writes_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert command.run(_parse(["fit", *SMALL, "--out", str(out)])) == 0
    model = TwoStageRecommender.load(out)
    assert model.n_pools == 2 and model.pools.shape == (50,)
    assert "wrote" in capsys.readouterr().out


def test_evaluate_prints_and_writes_json(tmp_path, capsys):
    js = tmp_path / "e.json"
    args = _parse(["evaluate", *SMALL, "--allocations", "random", "--K", "5", "--json", str(js)])
    assert command.run(args) == 0
    figures = json.loads(js.read_text())
    assert set(figures["random"]) == {"precision", "recall", "ndcg", "implicit_precision"}
    assert 0.0 <= figures["random"]["precision"] <= 1.0
    assert "random" in capsys.readouterr().out


def test_evaluate_reads_movielens_100k_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = [
        f"{u}\t{i}\t{rng.integers(1, 6)}\t88125{u:04d}"
        for u in range(1, 41)
        for i in rng.choice(np.arange(1, 31), size=8, replace=False)
    ]
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    args = _parse(
        [
            "evaluate",
            "--data",
            str(tmp_path),
            *SMALL[4:],
            "--allocations",
            "random",
            "--K",
            "3",
            "--threshold",
            "1",
        ]
    )
    assert command.run(args) == 0
    assert "40 users x 30 items" in capsys.readouterr().out


def test_evaluate_reads_lastfm_files(tmp_path, capsys):
    rng = np.random.default_rng(1)
    lines = [
        f"{u:040x}\t\tartist {a}\t{rng.integers(1, 500)}"
        for u in range(30)
        for a in rng.choice(25, size=6, replace=False)
    ]
    (tmp_path / "usersha1-artmbid-artname-plays.tsv").write_text("\n".join(lines) + "\n")
    args = _parse(
        ["evaluate", "--data", str(tmp_path), *SMALL[4:], "--allocations", "kmeans", "--K", "3"]
    )
    assert command.run(args) == 0
    assert "30 users x 25 items" in capsys.readouterr().out


def test_bad_data_file_is_reported_with_line(tmp_path, capsys):
    (tmp_path / "u.data").write_text("1\t2\t5\t881250949\nnot a line\n")
    args = _parse(["evaluate", "--data", str(tmp_path), "--allocations", "random"])
    assert command.run(args) == 2
    err = capsys.readouterr().err
    assert "u.data" in err and "line 2" in err


def test_bandit_subcommand(tmp_path, capsys):
    js = tmp_path / "b.json"
    args = _parse(
        [
            "bandit",
            "--rounds",
            "50",
            "--seeds",
            "2",
            "--arms",
            "20",
            "--dim",
            "4",
            "--pools",
            "4",
            "--nominator-dim",
            "2",
            "--warm-start",
            "5",
            "--json",
            str(js),
        ]
    )
    assert command.run(args) == 0
    curves = json.loads(js.read_text())
    assert set(curves) == {"single", "naive", "sync"} and len(curves["sync"]) == 50
    assert "naive" in capsys.readouterr().out


def test_unknown_allocation_is_an_error(capsys):
    args = _parse(["evaluate", *SMALL, "--allocations", "magic"])
    assert command.run(args) == 2
    assert "magic" in capsys.readouterr().err


@pytest.mark.slow
def test_report_quick(tmp_path):
    from widelab_core.command import ReportContext

    sec = command.report(ReportContext(quick=True, out_dir=tmp_path))
    html = sec.to_html()
    assert html.count("<img") == 2
    m = sec.metrics
    assert m["study2 precision@10 learned"] > m["study2 precision@10 random"]
    assert m["bandit last-10% regret/round naive"] > m["bandit last-10% regret/round sync"]
