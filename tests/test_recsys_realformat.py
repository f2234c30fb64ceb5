"""widelab-recsys on real-format files read by widelab-core's dataset readers."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from widelab_core.cli import main
from widelab_core.datasets import read_movielens_1m, synthetic_movielens
from widelab_core.testing import standard_error
from widelab_recsys import (
    ALSNominator,
    MLPRanker,
    TwoStageRecommender,
    pool_allocation_study,
    ranking_metrics,
    recommend_all,
    train_test_split,
)

pytestmark = pytest.mark.integration


def _write_ml1m(folder, data):
    """Write an InteractionData in the MovieLens-1M '::' format."""
    m = data.matrix.tocoo()
    lines = [
        f"{data.user_ids[u]}::{data.item_ids[i]}::{int(r)}::{978300000 + k}"
        for k, (u, i, r) in enumerate(zip(m.row, m.col, m.data))
    ]
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    users = [
        f"{uid}::{g}::25::4::12345" for uid, g in zip(data.user_ids, data.user_attributes["gender"])
    ]
    (folder / "users.dat").write_text("\n".join(users) + "\n")


@pytest.fixture(scope="module")
def ml1m(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ml-1m")
    data = synthetic_movielens(150, 120, n_interactions=4000, seed=3)
    _write_ml1m(folder, data)
    return folder, data


def test_readback_fit_recommend_with_attributes(ml1m):
    folder, original = ml1m
    data = read_movielens_1m(folder)
    np.testing.assert_array_equal(data.matrix.toarray(), original.matrix.toarray())
    positives = data.binarize(4).matrix
    train, test = train_test_split(positives, 0.25, seed=0)
    female = (data.user_attributes["gender"] == "F").astype(np.float32)[:, None]
    model = TwoStageRecommender(
        nominators=[ALSNominator(factors=8, iterations=8, random_state=j) for j in range(3)],
        ranker=MLPRanker(embedding_dim=8, hidden=16, epochs=10),
        candidates_per_nominator=10,
        feature_dim=4,
    ).fit(train, user_features=female)
    assert model.user_features.shape == (150, 5)
    rec = recommend_all(model, train, 10)
    r = ranking_metrics(rec, test)
    # popularity-and-taste data: better than the expected precision of random guessing
    free = train.shape[1] - np.diff(train.indptr)
    random_precision = float(np.mean(np.diff(test.indptr) / free))
    assert r.precision > 1.5 * random_precision


def test_widelab_recsys_evaluate_on_ml1m_files(ml1m, tmp_path, capsys):
    folder, _ = ml1m
    out = tmp_path / "eval.json"
    code = main(
        [
            "recsys",
            "evaluate",
            "--data",
            str(folder),
            "--pools",
            "2",
            "--k",
            "10",
            "--factors",
            "4",
            "--ranker-epochs",
            "2",
            "--allocations",
            "random,kmeans",
            "--nominator-weighting",
            "both",
            "--K",
            "5",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    figures = json.loads(out.read_text())
    assert set(figures) == {"random", "kmeans", "random+iw", "kmeans+iw"}
    assert "150 users x 120 items" in capsys.readouterr().out


@pytest.mark.slow
def test_pool_study_on_real_format_data(tmp_path):
    """Study 2 on real-format data: planted interactions written as MovieLens-100K
    ``u.data`` (held-out pairs carry later timestamps), read back by widelab-core, split
    by time; learned pools keep the planted groups whole and beat random pools."""
    from sklearn.metrics import completeness_score
    from widelab_core.datasets import read_movielens_100k
    from widelab_recsys import hits_at_k, planted_groups

    d = planted_groups(400, 8, 25, p_in=0.3, p_out=0.01, test_fraction=0.3, seed=0)
    lines = []
    for stamp0, part in ((881250000, d.train), (891250000, d.test)):
        coo = part.tocoo()
        lines += [
            f"{u + 1}\t{i + 1}\t5\t{stamp0 + k}" for k, (u, i) in enumerate(zip(coo.row, coo.col))
        ]
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    data = read_movielens_100k(tmp_path)
    items = data.item_ids - 1
    stamps = data.timestamps.tocoo()
    late = stamps.data >= 891250000

    def part(mask):
        return sp.csr_matrix(
            (np.ones(mask.sum(), np.float32), (stamps.row[mask], stamps.col[mask])),
            shape=data.matrix.shape,
        )

    train, test = part(~late), part(late)
    r = pool_allocation_study((train, test), moe_epochs=20, ranker_epochs=8, seed=0)
    assert r["ari"] == {}
    planted = d.item_group[items]
    assert completeness_score(planted, r["pools"]["learned"]) > 0.8
    assert completeness_score(planted, r["pools"]["random"]) < 0.2
    h1, n_rel = hits_at_k(r["recommended"]["learned"], test)
    h0, _ = hits_at_k(r["recommended"]["random"], test)
    keep = n_rel > 0
    diff = h1[keep].mean(axis=1) - h0[keep].mean(axis=1)
    assert diff.mean() > 3 * standard_error(diff)


def _write_lastfm(folder, data):
    """Write an InteractionData in the Last.fm-360K plays format (tab-separated, empty MBID)."""
    m = data.matrix.tocoo()
    lines = [
        f"{data.user_ids[u]}\t\t{data.item_ids[i]}\t{int(p)}"
        for u, i, p in zip(m.row, m.col, m.data)
    ]
    (folder / "usersha1-artmbid-artname-plays.tsv").write_text("\n".join(lines) + "\n")


def test_nominator_training_study_on_lastfm_360k_files(tmp_path, capsys):
    """Independent vs importance-weighted nominators through the CLI on files in the
    Last.fm-360K format (the MovieLens-1M run is in the evaluate test above; learned pools
    on real-format data: the slow pool study)."""
    from widelab_core.datasets import read_lastfm_360k, synthetic_lastfm

    folder = tmp_path / "lastfm-dataset-360K"
    folder.mkdir()
    data = synthetic_lastfm(120, 80, n_interactions=2000, seed=4)
    _write_lastfm(folder, data)
    back = read_lastfm_360k(folder)
    assert back.matrix.nnz == data.matrix.nnz
    assert back.matrix.sum() == data.matrix.sum()
    out = tmp_path / "study.json"
    args = ["recsys", "evaluate", "--data", str(folder), "--pools", "2", "--k", "10"]
    args += ["--factors", "4", "--ranker-epochs", "2", "--allocations", "random"]
    args += ["--nominator-weighting", "both", "--weighting-temperature", "0.5", "--K", "5"]
    assert main([*args, "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures) == {"random", "random+iw"}
    for row in figures.values():
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert f"{back.matrix.shape[0]} users x {back.matrix.shape[1]} items" in capsys.readouterr().out
