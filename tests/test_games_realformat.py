"""widelab-games on real-format files read by widelab-core's dataset readers."""

import json

import numpy as np
import pytest
from widelab_core.cli import main
from widelab_games import demand_users, fit_embeddings, load_ratings, make_game, utilities

pytestmark = pytest.mark.integration


def _write_ml100k(folder, n_users=40, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    taste = rng.normal(size=(n_users, 2))
    kind = rng.normal(size=(n_items, 2))
    lines = []
    for u in range(n_users):
        for i in rng.choice(n_items, 12, replace=False):
            r = int(np.clip(np.rint(3 + taste[u] @ kind[i]), 1, 5))
            lines.append(f"{u + 1}\t{i + 1}\t{r}\t{881250949 + u}")
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    users = [
        f"{u + 1}|{20 + u}|{'F' if u % 3 == 0 else 'M'}|writer|0000{u}" for u in range(n_users)
    ]
    (folder / "u.user").write_text("\n".join(users) + "\n")
    items = []
    for i in range(n_items):
        flags = ["0"] * 19
        flags[1 + i % 4] = "1"
        items.append(f"{i + 1}|Movie {i}|01-Jan-1995||http://x|" + "|".join(flags))
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")


def test_movielens_100k_files_to_audit(tmp_path):
    data_dir = tmp_path / "ml-100k"
    data_dir.mkdir()
    _write_ml100k(data_dir)
    data = load_ratings("movielens", data_dir)
    assert data.ratings.shape == (40, 30)
    assert set(np.unique(data.user_groups)) == {0, 1}
    assert set(np.unique(data.item_groups)) == {1, 2, 3, 4}  # genre flags 1..4
    out = tmp_path / "out"
    rc = main(
        ["games", "audit", "--data", "movielens", "--path", str(data_dir), "--models", "pmf"]
        + ["--regs", "0.1", "--ns", "3", "--taus", "1,0.3", "--restarts", "2"]
        + ["--max-steps", "300", "--out", str(out)]
    )
    assert rc == 0
    rows = json.loads((out / "audit.json").read_text())
    assert {"exposure_ratio[1]", "neighbour_ratio[1]", "rating_gap"} <= set(rows[0])


def test_lastfm_360k_files_to_game(tmp_path):
    rng = np.random.default_rng(1)
    plays = []
    for u in range(30):
        for a in rng.choice(20, 8, replace=False):
            plays.append(f"user{u:03d}\t\tArtist {a}\t{int(rng.integers(1, 500))}")
    (tmp_path / "usersha1-artmbid-artname-plays.tsv").write_text("\n".join(plays) + "\n")
    prof = [f"user{u:03d}\t{'f' if u % 2 else 'm'}\t25\tPoland\tFeb 1, 2007" for u in range(30)]
    (tmp_path / "usersha1-profile.tsv").write_text("\n".join(prof) + "\n")
    data = load_ratings("lastfm", tmp_path)
    assert data.ratings.shape == (30, 20)
    assert data.ratings.data.max() <= np.log1p(500) + 1e-9  # ratings are log(1 + plays)
    assert set(np.unique(data.item_groups)) <= {0, 1, 2}  # popularity terciles
    assert np.mean(data.user_groups == 1) == pytest.approx(0.5)
    emb = fit_embeddings(data.ratings, "nmf", 2, regs=[0.0])
    users, _ = demand_users(emb)
    game = make_game(users, 3, 0.1)
    u = np.asarray(utilities(game, emb.items[:3] + 1e-6))
    assert u.sum() == pytest.approx(1.0, abs=1e-5)


def test_malformed_file_error_names_file_and_line(tmp_path, capsys):
    (tmp_path / "u.data").write_text("1\t2\t5\t100\n1\tx\t4\t100\n")
    rc = main(["games", "solve", "--data", "movielens", "--path", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "u.data" in err and "line 2" in err
