"""The ``widelab games`` command (``solve``, ``audit``) and the report hook."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from widelab_core.cliargs import (
    check_output_dir,
    float_list,
    int_list,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)
from widelab_core.command import Command, ReportContext, ReportSection, atomic_write


def _data_args(p: argparse.ArgumentParser) -> None:
    from .data import SOURCES

    p.add_argument("--data", default="synthetic", choices=SOURCES, help="rating data source")
    p.add_argument("--path", default=None, help="folder of MovieLens-100K/1M or LastFM-360K")
    p.add_argument(
        "--size", type=int_list(positive_int), default=[300, 200], help="synthetic users,items"
    )
    p.add_argument(
        "--regs", type=float_list(nonnegative_float), default=None, help="regularisation grid (CV)"
    )
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed")
    p.add_argument("--out", default="widelab-games", help="output folder")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``solve`` and ``audit`` sub-subcommands."""
    sub = parser.add_subparsers(dest="games_command", metavar="{solve,audit}")
    s = sub.add_parser("solve", help="fit a recommender, find local Nash equilibria along tau")
    _data_args(s)
    s.add_argument("--model", default="pmf", choices=("nmf", "pmf", "two_tower"))
    s.add_argument("--dim", type=positive_int, default=3, help="embedding dimension")
    s.add_argument("--n", type=positive_int, default=10, help="number of producers")
    s.add_argument(
        "--taus", type=float_list(positive_float), default=[1.0, 0.3, 0.1], help="decreasing taus"
    )
    s.add_argument("--restarts", type=positive_int, default=8, help="random restarts")
    s.add_argument("--max-steps", type=positive_int, default=2000, help="ascent steps per tau")
    a = sub.add_parser("audit", help="audit sweep over model, dimension, tau and n")
    _data_args(a)
    a.add_argument("--models", default="nmf,pmf,two_tower", help="comma-separated models")
    a.add_argument("--dims", type=int_list(positive_int), default=[3], help="embedding dimensions")
    a.add_argument(
        "--taus", type=float_list(positive_float), default=[1.0, 0.3, 0.1, 0.03], help="taus"
    )
    a.add_argument("--ns", type=int_list(positive_int), default=[10], help="numbers of producers")
    a.add_argument("--restarts", type=positive_int, default=4, help="random restarts")
    a.add_argument("--max-steps", type=positive_int, default=1000, help="ascent steps per tau")


def _size(args) -> tuple[int, int]:
    if len(args.size) != 2:
        raise ValueError(f"--size needs two integers (users,items); got {args.size}")
    return args.size[0], args.size[1]


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _print_rows(rows, keys) -> None:
    print("  ".join(f"{k:>14}" for k in keys))
    for r in rows:
        print("  ".join(f"{_fmt(r.get(k, '')):>14}" for k in keys))


def _solve(args) -> int:
    import jax
    import numpy as np

    from .data import load_ratings
    from .embeddings import demand_users, fit_embeddings
    from .game import make_game
    from .secondorder import second_order_test
    from .solve import best_response_gains, continuation

    check_output_dir(args.out, "--out")
    data = load_ratings(args.data, args.path, seed=args.seed, size=_size(args))
    emb = fit_embeddings(data.ratings, args.model, args.dim, regs=args.regs, seed=args.seed)
    users, _ = demand_users(emb)
    game = make_game(users, args.n, args.taus[0])
    key = jax.random.key(args.seed)
    results = continuation(
        game, args.taus, key=key, n_restarts=args.restarts, max_steps=args.max_steps
    )
    out, rows = [], []
    for res in results:
        g = game.with_tau(res.tau)
        status = [second_order_test(g, p).status for p in res.profiles]
        eps = [
            float(best_response_gains(g, p, key=jax.random.fold_in(key, i)).max())
            for i, p in enumerate(res.profiles)
        ]
        rows.append(
            {
                "tau": res.tau,
                "converged": int(res.converged.sum()),
                "local_nash": status.count("local_nash"),
                "min_epsilon": min(eps),
                "max_grad": float(res.grad_norm.max()),
            }
        )
        out.append(
            {
                "tau": res.tau,
                "profiles": np.asarray(res.profiles).tolist(),
                "status": status,
                "epsilon": eps,
                "utilities": np.asarray(res.utilities).tolist(),
            }
        )
    print(f"{data.name}: {args.model} d={args.dim}, n={args.n}, {args.restarts} restarts")
    _print_rows(rows, ["tau", "converged", "local_nash", "min_epsilon", "max_grad"])
    path = Path(args.out) / "equilibria.json"
    meta = {"data": data.name, "model": args.model, "dim": args.dim, "n": args.n}
    atomic_write(path, json.dumps({"meta": meta, "results": out}))
    print(f"wrote {path}")
    return 0


def _audit(args) -> int:
    from .data import load_ratings
    from .study import SweepConfig, plot_tau_sweep, run_sweep

    check_output_dir(args.out, "--out")
    data = load_ratings(args.data, args.path, seed=args.seed, size=_size(args))
    cfg = SweepConfig(
        regs=args.regs,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        dims=tuple(args.dims),
        taus=tuple(args.taus),
        ns=tuple(args.ns),
        n_restarts=args.restarts,
        max_steps=args.max_steps,
        seed=args.seed,
    )
    rows, _ = run_sweep(data, cfg)
    keys = ["model", "dim", "n", "tau", "n_local_nash", "epsilon", "mean_pairwise_cos"]
    keys += ["n_distinct", "rating", "rating_gap"]
    print(data.name)
    _print_rows(rows, keys)
    out = Path(args.out)
    atomic_write(out / "audit.json", json.dumps(rows, indent=1))
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig = plot_tau_sweep(rows)
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(out / "tau_sweep.png", buf.getvalue())
    print(f"wrote {out / 'audit.json'} and {out / 'tau_sweep.png'}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``widelab games solve|audit``; errors in the input give exit code 2."""
    sub = getattr(args, "games_command", None)
    if sub is None:
        print("usage: widelab games {solve,audit} [options]  (see --help)", file=sys.stderr)
        return 2
    try:
        return _solve(args) if sub == "solve" else _audit(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"widelab games {sub}: {err}", file=sys.stderr)
        return 2


def report(ctx: ReportContext) -> ReportSection:
    """The games section: a tau sweep of the audit on synthetic MovieLens-like data."""
    from .report import games_report

    return games_report(ctx)


command = Command(
    name="games",
    help="Exposure games: equilibria of content creators and pre-deployment audits.",
    configure=configure,
    run=run,
    report=report,
    order=40,
)

__all__ = ["command", "configure", "report", "run"]
