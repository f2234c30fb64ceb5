"""The ``widelab recsys`` command (fit, evaluate, bandit) and the report hook."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from widelab_core.cliargs import (
    check_output_file,
    finite_float,
    fraction,
    nonnegative_int,
    positive_float,
    positive_int,
)
from widelab_core.command import Command, ReportContext, ReportSection, atomic_write

NOMINATOR_KINDS = ("als", "bpr", "linear", "two_tower")
WEIGHTINGS = ("independent", "ranker")


def load_interactions(args) -> tuple:
    """The implicit-feedback matrix named by ``--data`` (MovieLens or LastFM files) or a
    synthetic stand-in (``--synthetic``); returns ``(matrix, description)``.

    Raises:
        FileNotFoundError: if ``--data`` holds no known file.
        ValueError: for malformed files (message names file and line).
    """
    from widelab_core import datasets as ds

    if args.data:
        path = Path(args.data)
        folder = path.parent if path.is_file() else path
        if (folder / "usersha1-artmbid-artname-plays.tsv").is_file():
            data = ds.read_lastfm_360k(path)
            threshold = 1.0 if args.threshold is None else args.threshold
        else:
            data = ds.read_movielens(path)
            threshold = 4.0 if args.threshold is None else args.threshold
        desc = f"{data.meta.get('source', path)} (>= {threshold} counts as positive)"
    else:
        if args.synthetic == "lastfm":
            data = ds.synthetic_lastfm(args.users, args.items, seed=args.seed)
            threshold = 1.0 if args.threshold is None else args.threshold
        else:
            data = ds.synthetic_movielens(args.users, args.items, seed=args.seed)
            threshold = 4.0 if args.threshold is None else args.threshold
        desc = f"synthetic {args.synthetic} {args.users}x{args.items} (seed {args.seed})"
    data = data.binarize(threshold)
    return data.matrix, desc


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="MovieLens-100K/1M or LastFM-360K folder (or its main file)")
    p.add_argument("--synthetic", choices=("movielens", "lastfm"), default="movielens")
    p.add_argument("--users", type=positive_int, default=943, help="synthetic users")
    p.add_argument("--items", type=positive_int, default=1682, help="synthetic items")
    p.add_argument("--threshold", type=finite_float, default=None, help="positive if >= this")
    p.add_argument("--seed", type=nonnegative_int, default=0)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nominator", choices=NOMINATOR_KINDS, default="als")
    p.add_argument("--pools", type=positive_int, default=4, help="number of pools / nominators")
    p.add_argument("--allocation", choices=("random", "kmeans", "learned"), default="random")
    p.add_argument("--k", type=positive_int, default=50, help="candidates per nominator")
    p.add_argument("--factors", type=positive_int, default=32, help="nominator factors / rank")
    p.add_argument("--ranker-epochs", type=positive_int, default=5)
    p.add_argument(
        "--weighting-temperature",
        type=positive_float,
        default=1.0,
        help="temperature of the ranker's softmax for importance-weighted nominators",
    )


def build_model(args, allocation: str | None = None, weighting: str | None = None):
    """A :class:`TwoStageRecommender` from parsed arguments."""
    from . import nominators as nm
    from .ranker import MLPRanker
    from .two_stage import TwoStageRecommender

    def make(j):
        s = args.seed + j
        if args.nominator == "als":
            return nm.ALSNominator(factors=args.factors, random_state=s)
        if args.nominator == "bpr":
            return nm.BPRNominator(factors=args.factors, random_state=s)
        if args.nominator == "linear":
            return nm.LinearNominator(rank=args.factors, seed=s)
        return nm.TwoTowerNominator(rank=args.factors, seed=s)

    return TwoStageRecommender(
        nominators=[make(j) for j in range(args.pools)],
        ranker=MLPRanker(epochs=args.ranker_epochs, seed=args.seed),
        allocation=allocation or args.allocation,
        candidates_per_nominator=args.k,
        seed=args.seed,
        nominator_weighting=weighting or getattr(args, "nominator_weighting", "independent"),
        weighting_temperature=args.weighting_temperature,
    )


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    fit = sub.add_parser("fit", help="fit a two-stage recommender and save it (.npz)")
    _data_args(fit)
    _model_args(fit)
    fit.add_argument("--out", required=True, help="model file to write")
    fit.add_argument("--nominator-weighting", choices=WEIGHTINGS, default="independent")
    ev = sub.add_parser("evaluate", help="hold out interactions; precision/recall/NDCG@K")
    _data_args(ev)
    _model_args(ev)
    ev.add_argument("--allocations", default="random,kmeans", help="comma-separated")
    ev.add_argument("--K", type=positive_int, default=10)
    ev.add_argument("--test-fraction", type=fraction, default=0.2)
    ev.add_argument("--json", help="also write the figures to this JSON file")
    ev.add_argument(
        "--nominator-weighting",
        choices=(*WEIGHTINGS, "both"),
        default="independent",
        help="nominator training; 'both' adds an importance-weighted row '<allocation>+iw'",
    )
    bd = sub.add_parser("bandit", help="regret of naive vs synchronised two-stage LinUCB")
    bd.add_argument("--rounds", type=positive_int, default=2000)
    bd.add_argument("--seeds", type=positive_int, default=8)
    bd.add_argument("--arms", type=positive_int, default=100)
    bd.add_argument("--dim", type=positive_int, default=20)
    bd.add_argument("--pools", type=positive_int, default=10)
    bd.add_argument("--nominator-dim", type=positive_int, default=5)
    bd.add_argument("--warm-start", type=nonnegative_int, default=200)
    bd.add_argument("--shared-features", action="store_true")
    bd.add_argument(
        "--slate", type=positive_int, default=1, help="K, arms served a round (slate regret)"
    )
    bd.add_argument(
        "--nominate", type=positive_int, default=1, help="k, arms each nominator nominates"
    )
    bd.add_argument("--seed", type=nonnegative_int, default=0)
    bd.add_argument("--json", help="also write the regret curves to this JSON file")


def _run(args: argparse.Namespace) -> int:
    try:
        if args.action == "fit":
            return _fit(args)
        if args.action == "evaluate":
            return _evaluate(args)
        return _bandit(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"widelab recsys {args.action}: {e}", file=sys.stderr)
        return 2


def _fit(args) -> int:
    check_output_file(args.out, "--out")
    m, desc = load_interactions(args)
    model = build_model(args).fit(m)
    model.save(args.out)
    print(f"fitted on {desc}: {m.shape[0]} users x {m.shape[1]} items, {m.nnz} positives")
    print(f"pool sizes {np.bincount(model.pools, minlength=model.n_pools).tolist()}")
    print(f"wrote {args.out}")
    return 0


def _evaluate(args) -> int:
    from .metrics import ranking_metrics
    from .planted import train_test_split
    from .two_stage import recommend_all

    if args.json:
        check_output_file(args.json, "--json")
    m, desc = load_interactions(args)
    train, test = train_test_split(m, args.test_fraction, seed=args.seed)
    print(f"{desc}: {m.shape[0]} users x {m.shape[1]} items; K = {args.K}")
    print(f"{'allocation':<10} {'precision':>9} {'recall':>8} {'ndcg':>8} {'impl.prec':>9}")
    out = {}
    allocations = [a.strip() for a in args.allocations.split(",") if a.strip()]
    for alloc in allocations:
        if alloc not in ("random", "kmeans", "learned"):
            raise ValueError(f"unknown allocation {alloc!r} in --allocations")
    weightings = WEIGHTINGS if args.nominator_weighting == "both" else (args.nominator_weighting,)
    for alloc, weighting in [(a, w) for a in allocations for w in weightings]:
        model = build_model(args, alloc, weighting).fit(train)
        r = ranking_metrics(recommend_all(model, train, args.K), test)
        row = alloc if weighting == "independent" else f"{alloc}+iw"
        out[row] = {
            "precision": r.precision,
            "recall": r.recall,
            "ndcg": r.ndcg,
            "implicit_precision": r.implicit_precision_pooled,
        }
        print(
            f"{row:<10} {r.precision:9.4f} {r.recall:8.4f} {r.ndcg:8.4f} "
            f"{r.implicit_precision_pooled:9.4f}"
        )
    if args.json:
        atomic_write(Path(args.json), json.dumps(out, indent=2))
    return 0


def _bandit(args) -> int:
    import jax

    from .bandits import simulate_regret

    if args.json:
        check_output_file(args.json, "--json")
    r = simulate_regret(
        jax.random.key(args.seed),
        n_seeds=args.seeds,
        rounds=args.rounds,
        n_arms=args.arms,
        dim=args.dim,
        n_pools=args.pools,
        nominator_dim=args.nominator_dim,
        warm_start=args.warm_start,
        shared_features=args.shared_features,
        slate=args.slate,
        nominate=args.nominate,
    )
    print(f"slates of K = {args.slate} arms, {args.nominate} nominated per nominator a round")
    tenth = max(1, args.rounds // 10)
    print(f"{'system':<8} {'cum. regret':>12} {'first 10%':>10} {'last 10%':>10}")
    for name, reg in r.items():
        print(
            f"{name:<8} {reg.sum(axis=1).mean():12.2f} {reg[:, :tenth].mean():10.4f} "
            f"{reg[:, -tenth:].mean():10.4f}"
        )
    if args.json:
        curves = {k: np.cumsum(v, axis=1).mean(axis=0).tolist() for k, v in r.items()}
        atomic_write(Path(args.json), json.dumps(curves))
    return 0


def _report(ctx: ReportContext) -> ReportSection:
    from .report import recsys_report

    return recsys_report(ctx)


command = Command(
    name="recsys",
    help="Two-stage recommenders: nominators, ranker, item pools, two-stage bandits.",
    configure=_configure,
    run=_run,
    report=_report,
    order=40,
)
