"""The ``widelab kernels`` command and report hook."""

from __future__ import annotations

import argparse
import sys

from widelab_core.cliargs import check_output_file, nonnegative_int, positive_int
from widelab_core.command import Command, ReportContext, ReportSection


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kernels_cmd")
    p = sub.add_parser(
        "digits", help="NNGP/NTK regression on digits vs finite nets trained with optax"
    )
    p.add_argument("--full", action="store_true", help="bigger study (several minutes)")
    p.add_argument("--n-train", type=positive_int, default=None, help="training images")
    p.add_argument("--n-test", type=positive_int, default=None, help="test images")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument(
        "--figure", type=str, default=None, help="write the NTK convergence plot here (PNG)"
    )
    from ._scale_cli import configure

    configure(sub)


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from .study import StudyConfig, convergence_figure, run_study

    if getattr(args, "kernels_cmd", None) in ("compute", "regress"):
        from ._scale_cli import run

        return run(args)
    if getattr(args, "kernels_cmd", None) != "digits":
        print(
            "usage: widelab kernels digits [--full] [--n-train N] [--n-test N] [--figure PATH]",
            file=sys.stderr,
        )
        return 2
    if args.figure:
        check_output_file(args.figure, "--figure")
    cfg = StudyConfig.full(args.seed) if args.full else StudyConfig.quick(args.seed)
    changes = {}
    if args.n_train is not None:
        changes["n_train"] = args.n_train
    if args.n_test is not None:
        changes["n_test"] = args.n_test
    for name, value in changes.items():
        if value <= 0:
            print(
                f"widelab kernels digits: --{name.replace('_', '-')} must be positive, got {value}",
                file=sys.stderr,
            )
            return 2
    cfg = dataclasses.replace(cfg, **changes)
    try:
        res = run_study(cfg)
    except ValueError as e:
        print(f"widelab kernels digits: {e}", file=sys.stderr)
        return 2
    print(f"{'net':5s} {'NNGP':>7s} {'NTK':>7s} {'finite':>7s}   (test accuracy)")
    for name, a, b, c in res["rows"]:
        print(f"{name:5s} {a:7.3f} {b:7.3f} {c:7.3f}")
    for w, m in zip(res["widths"], res["ntk_error"]):
        print(f"width {int(w):5d}: relative NTK error {m:.4f}")
    if args.figure:
        import io
        from pathlib import Path

        from widelab_core.command import atomic_write

        fig = convergence_figure(res)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        atomic_write(Path(args.figure), buf.getvalue())
        print(f"wrote {args.figure}")
    print(f"{res['seconds']:.1f} s")
    return 0


def _report(ctx: ReportContext) -> ReportSection:
    from .study import StudyConfig, convergence_figure, run_study

    cfg = StudyConfig.quick(ctx.seed) if ctx.quick else StudyConfig.full(ctx.seed)
    res = run_study(cfg, progress=ctx.bar)
    sec = ReportSection("Kernels: infinite-width NNGP and NTK")
    sec.text(
        f"Kernel regression on scikit-learn's digits ({cfg.n_train} training and "
        f"{cfg.n_test} test images, 10 classes, centred one-hot targets): the NNGP "
        "posterior mean and the t = infinity NTK ensemble mean of the same architectures, "
        f"next to the finite networks (width {cfg.width}, {cfg.channels} channels) trained "
        f"with optax Adam for {cfg.train_steps} full-batch steps."
    )
    sec.table(
        ["network", "NNGP accuracy", "NTK accuracy", "finite net accuracy"],
        [list(r) for r in res["rows"]],
        caption="test accuracy on digits",
    )
    sec.figure(
        convergence_figure(res),
        f"Empirical NTK of a 2-hidden-layer ReLU MLP on {cfg.ntk_points} digits, "
        f"{cfg.ntk_samples} draws per width, against the analytic NTK.",
    )
    for name, _, ntk_acc, finite_acc in res["rows"]:
        sec.metric(f"{name} NTK accuracy", ntk_acc, unit="1", better="higher")
        sec.metric(
            f"{name} finite-net accuracy", finite_acc, summary=False, unit="1", better="higher"
        )
    sec.metric("NTK rel. error at widest", float(res["ntk_error"][-1]), unit="1", better="lower")
    sec.metric("kernels study seconds", round(res["seconds"], 1), summary=False, unit="s")
    return sec


command = Command(
    name="kernels",
    help="Infinite-width NNGP and NTK kernels.",
    configure=_configure,
    run=_run,
    report=_report,
    order=20,
)
