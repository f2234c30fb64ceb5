"""Reader and generator throughput on ML-1M-sized files written from synthetic data."""

import tempfile
import time
from pathlib import Path

from widelab_core.datasets import (
    read_lastfm_360k,
    read_movielens_1m,
    synthetic_lastfm,
    synthetic_movielens,
)

t = time.perf_counter()
ml = synthetic_movielens(6040, 3706, n_interactions=1_000_209, seed=0)
print(f"synthetic_movielens 6040 x 3706, 1,000,209 ratings: {time.perf_counter() - t:.2f} s")
t = time.perf_counter()
lf = synthetic_lastfm(20_000, 5_000, seed=0)
print(
    f"synthetic_lastfm 20000 x 5000, {lf.n_interactions:,} pairs: {time.perf_counter() - t:.2f} s"
)
with tempfile.TemporaryDirectory() as d:
    d = Path(d)
    m = ml.matrix.tocoo()
    with open(d / "ratings.dat", "w") as f:
        for u, i, r in zip(m.row + 1, m.col + 1, m.data.astype(int)):
            f.write(f"{u}::{i}::{r}::978300760\n")
    t = time.perf_counter()
    back = read_movielens_1m(d)
    dt = time.perf_counter() - t
    assert (back.matrix != ml.matrix).nnz == 0
    print(
        f"read_movielens_1m, {back.n_interactions:,} lines: {dt:.2f} s ({back.n_interactions / dt / 1e3:.0f}k lines/s)"
    )
    m = lf.matrix.tocoo()
    with open(d / "usersha1-artmbid-artname-plays.tsv", "w") as f:
        for u, i, p in zip(m.row, m.col, m.data.astype(int)):
            f.write(f"{lf.user_ids[u]}\t\t{lf.item_ids[i]}\t{p}\n")
    t = time.perf_counter()
    back = read_lastfm_360k(d)
    dt = time.perf_counter() - t
    assert back.n_interactions == lf.n_interactions and back.matrix.sum() == lf.matrix.sum()
    print(
        f"read_lastfm_360k, {back.n_interactions:,} lines: {dt:.2f} s ({back.n_interactions / dt / 1e3:.0f}k lines/s)"
    )
