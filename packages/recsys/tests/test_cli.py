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


BANDIT = ["--rounds", "50", "--arms", "20", "--dim", "4", "--pools", "4"]
BANDIT += ["--nominator-dim", "2", "--warm-start", "5"]


def test_bandit_subcommand_serves_slates(tmp_path, capsys):
    """``--slate 3 --nominate 2``: the curves are those of ``run_linucb`` /
    ``run_two_stage`` on the seed's own instance and noise draws (slate regret)."""
    import jax
    import jax.numpy as jnp
    from widelab_recsys import make_instance, run_linucb, run_two_stage
    from widelab_recsys.bandits import _instances

    js = tmp_path / "b.json"
    argv = ["bandit", *BANDIT, "--seeds", "1", "--slate", "3", "--nominate", "2", "--seed", "4"]
    assert command.run(_parse([*argv, "--json", str(js)])) == 0
    curves = json.loads(js.read_text())
    out = capsys.readouterr().out
    assert "naive" in out and "slates of K = 3 arms, 2 nominated" in out
    # the seed's draws, by hand; the instance through simulate_regret's own compiled
    # program (unit-norm arms tie at round 1, so the last bit of a norm picks the slate)
    keys = jax.random.split(jax.random.key(4), 1)
    _, kn, kw = jax.random.split(keys[0], 3)
    setting = dict(n_arms=20, dim=4, n_pools=4, nominator_dim=2, warm_start=5)
    inst = jax.tree.map(
        lambda a: a[0], _instances(keys, (*setting.items(), ("shared_features", False)))
    )
    by_hand = make_instance(jax.random.split(keys[0], 3)[0], **setting)
    for mine, theirs in zip(inst, by_hand, strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)
    noise = 0.1 * jax.random.normal(kn, (50, 3))
    wnoise = 0.1 * jax.random.normal(kw, (5,))
    arms, single = run_linucb(inst.features, inst.theta, noise)
    assert arms.shape == (50, 3)
    both = jax.vmap(lambda f: run_two_stage(inst, noise, sync=f, warm_noise=wnoise, nominate=2)[1])(
        jnp.array([False, True])
    )
    for name, regret in (("single", single), ("naive", both[0]), ("sync", both[1])):
        assert np.all(np.asarray(regret) >= -1e-6)  # against the best slate of 3 arms
        np.testing.assert_allclose(curves[name], np.cumsum(regret), rtol=1e-5, atol=1e-5)
    assert curves["naive"][-1] != curves["sync"][-1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nominate", "6"], "nominate=6 exceeds the pool size n_arms / n_pools = 5"),
        (["--slate", "5"], "slate=5 exceeds the 4 arms nominated a round"),
    ],
)
def test_bandit_slate_larger_than_the_nominees_is_an_error(extra, message, capsys):
    assert command.run(_parse(["bandit", *BANDIT, *extra])) == 2
    assert message in capsys.readouterr().err


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
    slate = "bandit slate K=3 last-10% regret/round"
    assert m[f"{slate} naive"] > m[f"{slate} sync"]
