"""Two-stage fit + recommend vs a single implicit ALS fit and implicit's recommend.

MovieLens-1M-sized synthetic data (6040 x 3706, 1,000,000 interactions, all kept as
implicit confidences), 64 factors, measured side by side in one process:

    cd /work/main && uv run python packages/recsys/benchmarks/two_stage_vs_implicit.py

Prints wall-clock seconds for fitting, users/s for recommending N=10 to every user
(filtering already-liked items), items/s for ``similar_items`` of every item (N=10), and
the time to partial-fit ``--new-users`` users against a full refit. BLAS is limited to one thread around implicit, as implicit
recommends; implicit itself uses all cores (num_threads=0) in both systems.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=6040)
    ap.add_argument("--items", type=int, default=3706)
    ap.add_argument("--interactions", type=int, default=1_000_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--pools", type=int, default=4)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--ranker-epochs", type=int, default=2)
    ap.add_argument("--new-users", type=int, default=1000)
    args = ap.parse_args()

    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits
    from widelab_core.datasets import synthetic_movielens
    from widelab_recsys import ALSNominator, MLPRanker, TwoStageRecommender

    data = synthetic_movielens(
        args.users, args.items, n_interactions=args.interactions, seed=0
    ).binarize(1)
    m = data.matrix
    users = np.arange(m.shape[0])
    print(f"matrix {m.shape[0]} x {m.shape[1]}, {m.nnz} interactions, {args.factors} factors")

    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=args.factors, iterations=15, random_state=0)
        t = time.perf_counter()
        als.fit(m, show_progress=False)
        t_als = time.perf_counter() - t
        als.recommend(users[:1024], m[:1024], N=10)  # warm-up
        t = time.perf_counter()
        als.recommend(users, m, N=10, filter_already_liked_items=True)
        t_als_rec = time.perf_counter() - t
        all_items = np.arange(m.shape[1])
        als.similar_items(all_items[:64], N=10)
        t = time.perf_counter()
        als.similar_items(all_items, N=10)
        t_als_sim = time.perf_counter() - t
    print(f"implicit ALS fit                      {t_als:8.2f} s")
    print(f"implicit ALS recommend (all users)    {m.shape[0] / t_als_rec:8.0f} users/s")
    print(f"implicit ALS similar_items (all)      {m.shape[1] / t_als_sim:8.0f} items/s")

    for factors in sorted({args.factors, args.factors // 2}, reverse=True):
        model = TwoStageRecommender(
            nominators=[
                ALSNominator(factors=factors, iterations=15, random_state=j)
                for j in range(args.pools)
            ],
            ranker=MLPRanker(epochs=args.ranker_epochs),
            candidates_per_nominator=args.k,
        )
        t = time.perf_counter()
        model.fit(m)
        t_total = time.perf_counter() - t
        # time the nominators alone on the same pools (refit, same seeds)
        t = time.perf_counter()
        model.fit_nominators(m)
        t_nom = time.perf_counter() - t
        print(
            f"two-stage {args.pools} x ALS({factors}) nominators fit {t_nom:8.2f} s "
            f"({t_nom / t_als:.2f}x implicit ALS)"
        )
        print(f"two-stage full fit (features, pools, nominators, ranker) {t_total:8.2f} s")
        for k in (args.k, args.k // 2):
            model.candidates_per_nominator = k
            model.recommend(users, m, N=10)  # warm-up: compiles the all-users call
            t = time.perf_counter()
            model.recommend(users, m, N=10)
            t_rec = time.perf_counter() - t
            print(
                f"two-stage recommend (all users, k={k}/nominator) "
                f"{m.shape[0] / t_rec:8.0f} users/s ({t_als_rec / t_rec:.2f}x implicit's rate)"
            )
        model.similar_items(all_items[:64], N=10)
        t = time.perf_counter()
        model.similar_items(all_items, N=10)
        t_sim = time.perf_counter() - t
        print(
            f"two-stage similar_items (all)         {m.shape[1] / t_sim:8.0f} items/s "
            f"({t_als_sim / t_sim:.2f}x implicit's rate)"
        )
        rows = m[: args.new_users]
        new_ids = np.arange(m.shape[0], m.shape[0] + rows.shape[0])
        t = time.perf_counter()
        model.partial_fit_users(new_ids, rows)
        t_part = time.perf_counter() - t
        print(
            f"two-stage partial_fit_users ({rows.shape[0]} new) {t_part:8.3f} s "
            f"({t_total / t_part:.0f}x faster than the full fit)"
        )


if __name__ == "__main__":
    main()
