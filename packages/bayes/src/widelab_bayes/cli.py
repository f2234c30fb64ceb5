"""The ``widelab bayes`` command and report hook.

Posterior-sampling sub-subcommands: ``sample`` (one posterior, one sampler), ``ess-width``
(ESS per gradient and per second against width), ``mmd`` (MMD^2 to the NNGP against
width and depth) and ``rejection`` (exact sampling, acceptance rate). The approximate-inference
``approx_report.configure(subparsers)`` adds its own; every sub-subcommand sets
``func`` with ``set_defaults``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from widelab_core.cliargs import (
    UsageError,
    int_list,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
)
from widelab_core.command import Command, ReportContext, ReportSection

from . import approx_report, scale_cli
from .approx_figures import add_figure
from .data import DATASETS
from .diagnostics import function_space_ess
from .runs import precompile
from .scale_cli import image_data
from .scale_report import image_report
from .studies import (
    HEADER,
    METHODS,
    ess_vs_width,
    mlp,
    mmd_vs_width,
    sample_bnn,
    toy_regression,
)


def load_regression_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``x_1, ..., x_d, y`` rows from a CSV file (``#`` comments, optional header).

    Args:
        path: file to read.

    Returns:
        ``(x (N, d), y (N, 1))``.

    Raises:
        ValueError: naming the file and line of a malformed, short or non-finite row.
    """
    path = Path(path)
    rows, width = [], None
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            fields = [t.strip() for t in text.split(",")]
            try:
                vals = [float(t) for t in fields]
            except ValueError:
                if not rows and width is None:  # a header line
                    width = len(fields)
                    continue
                raise ValueError(f"{path}:{lineno}: not a number in {text!r}") from None
            if width is None:
                width = len(vals)
            if len(vals) != width or width < 2:
                raise ValueError(
                    f"{path}:{lineno}: expected {max(width, 2)} columns (inputs then target), "
                    f"got {len(vals)}"
                )
            if not all(np.isfinite(vals)):
                raise ValueError(f"{path}:{lineno}: non-finite value in {text!r}")
            rows.append(vals)
    if len(rows) < 2:
        raise ValueError(f"{path}: need at least 2 data rows, found {len(rows)}")
    a = np.asarray(rows)
    return a[:, :-1], a[:, -1:]


# ----------------------------------------------------------------------------- commands
def _x64(args):
    import contextlib

    import jax

    return jax.enable_x64(True) if args.x64 else contextlib.nullcontext()


def _run_sample(args) -> int:
    import jax

    if args.data in DATASETS:
        data = image_data(args)
    else:
        if args.data and not Path(args.data).is_file():
            raise UsageError(
                f"--data {args.data!r}: no such file (expected {', '.join(DATASETS)} or a CSV "
                "of x_1..x_d,y rows)"
            )
        data = load_regression_csv(args.data) if args.data else None
    with _x64(args):
        run = sample_bnn(
            jax.random.key(args.seed),
            args.width,
            args.method,
            n_data=args.n_data,
            noise_std=args.noise,
            chains=args.chains,
            num_warmup=args.warmup,
            num_samples=args.samples,
            persistence=args.persistence,
            u_drift=args.u_drift or None,
            thin=args.thin,
            depth=args.depth,
            data=data,
            seed=args.seed,
            network=args.network,
            likelihood=args.likelihood,
        )
    print(_format_table(HEADER, [run.row()]))
    print(f"step size {run.result.step_size:.4g}, compile {run.result.compile_seconds:.1f} s")
    return 0


def _run_ess_width(args) -> int:
    import jax

    with _x64(args):
        runs = ess_vs_width(
            jax.random.key(args.seed),
            args.widths,
            methods=args.methods.split(","),
            n_data=args.n_data,
            noise_std=args.noise,
            chains=args.chains,
            num_warmup=args.warmup,
            num_samples=args.samples,
            seed=args.seed,
        )
    print(_format_table(HEADER, [r.row() for r in runs]))
    return 0


def _run_mmd(args) -> int:
    import jax

    rows = mmd_vs_width(
        jax.random.key(args.seed), args.widths, args.depths, num_samples=args.samples
    )
    print(_format_table(["depth", "width", "MMD^2", "std. error"], [list(r) for r in rows]))
    return 0


def _run_rejection(args) -> int:
    import jax

    from .model import BNN
    from .rejection import marginalised_rejection_sample, rejection_sample

    x, y, _ = toy_regression(args.n_data, args.seed, args.noise)
    with _x64(args):
        model = BNN(mlp(args.width, args.depth), x, y, noise_std=args.noise)
        rows = []
        for name, fn in (
            ("prior", rejection_sample),
            ("readout-marginalised", marginalised_rejection_sample),
        ):
            r = fn(jax.random.key(args.seed), model, args.proposals)
            rows.append(
                [name, r.num_proposed, r.num_accepted, r.acceptance_rate, r.acceptance_rate_se]
            )
    print(_format_table(["proposal", "proposed", "accepted", "rate", "rate s.e."], rows))
    return 0


def _format_table(header, rows) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [list(map(str, header))] + [[fmt(v) for v in r] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c[i].rjust(widths[i]) for i in range(len(c))) for c in cells)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``widelab bayes`` sub-subcommands (posterior sampling, then approximate inference)."""
    sub = parser.add_subparsers(dest="bayes_command", metavar="STUDY")

    def common(p, width=True):
        if width:
            p.add_argument("--depth", type=positive_int, default=1, help="hidden ReLU layers")
        p.add_argument("--n-data", type=positive_int, default=100, help="toy regression points")
        p.add_argument("--noise", type=positive_float, default=0.3, help="likelihood noise std")
        p.add_argument("--seed", type=nonnegative_int, default=0)
        p.add_argument("--x64", action="store_true", help="run in float64")

    def chains(p):
        p.add_argument("--chains", type=positive_int, default=4)
        p.add_argument("--warmup", type=nonnegative_int, default=300)
        p.add_argument("--samples", type=positive_int, default=500)

    p = sub.add_parser("sample", help="sample one BNN posterior and report function-space ESS")
    p.add_argument("--width", type=positive_int, default=256)
    p.add_argument(
        "--method",
        choices=list(METHODS),
        default="repriorised-ghmc",
    )
    p.add_argument(
        "--persistence", type=probability, default=0.95, help="GHMC momentum persistence"
    )
    p.add_argument(
        "--u-drift",
        type=probability,
        default=0.02,
        help="GHMC: drift of Neal's non-reversible uniform (0: standard accept/reject)",
    )
    p.add_argument("--thin", type=positive_int, default=1, help="GHMC transitions per stored draw")
    p.add_argument(
        "--data",
        default=None,
        help="digits, cifar10 (with --path) or a CSV of x_1..x_d,y rows (default: toy data)",
    )
    scale_cli.add_data_options(p)
    common(p)
    chains(p)
    p.set_defaults(func=_run_sample)

    p = sub.add_parser("ess-width", help="ESS per gradient and per second against width")
    p.add_argument("--widths", type=int_list(positive_int), default=[64, 256, 1024])
    p.add_argument(
        "--methods",
        default="repriorised-ghmc,collapsed-ghmc,plain-ghmc,plain-nuts",
        help=f"comma-separated, from {', '.join(METHODS)}",
    )
    common(p, width=False)
    chains(p)
    p.set_defaults(func=_run_ess_width)

    p = sub.add_parser("mmd", help="MMD^2 between finite ReLU nets and their NNGP")
    p.add_argument("--widths", type=int_list(positive_int), default=[4, 16, 64, 256])
    p.add_argument("--depths", type=int_list(positive_int), default=[1, 2, 3])
    p.add_argument("--samples", type=positive_int, default=300)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=_run_mmd)

    p = sub.add_parser("rejection", help="exact posterior samples by rejection from the prior")
    p.add_argument("--width", type=positive_int, default=16)
    p.add_argument("--proposals", type=positive_int, default=20000)
    common(p)
    p.set_defaults(func=_run_rejection, n_data=3)

    scale_cli.configure(sub)
    approx_report.configure(sub)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen sub-subcommand."""
    func = getattr(args, "func", None)
    if func is None:
        print("usage: widelab bayes STUDY ... (see widelab bayes --help)", file=sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except UsageError:
        raise
    except (ValueError, FileNotFoundError) as err:
        print(f"widelab bayes {args.bayes_command}: {err}", file=sys.stderr)
        return 2


# ------------------------------------------------------------------------------ report
RHAT_OK = 1.05
"""Largest max R-hat at which a run's ESS is trusted (Vehtari et al. 2021 advise 1.01;
the report's short chains use 1.05)."""


def _ess_figure(runs):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for method in sorted({r.method for r in runs}):
        rs = sorted((r for r in runs if r.method == method), key=lambda r: r.width)
        w = [r.width for r in rs]
        axes[0].loglog(w, [r.ess_per_gradient for r in rs], "o-", label=method)
        axes[1].loglog(w, [r.ess_per_second for r in rs], "o-", label=method)
    widths = sorted({r.width for r in runs})
    for ax in axes:
        ax.set_xticks(widths, [str(w) for w in widths], minor=False)
        ax.set_xticks([], minor=True)
    axes[0].set(xlabel="width", ylabel="function-space ESS / gradient")
    axes[1].set(xlabel="width", ylabel="function-space ESS / second")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _trace_figure(runs):
    import matplotlib.pyplot as plt

    widest = max(r.width for r in runs)
    rs = [r for r in runs if r.width == widest]
    fig, axes = plt.subplots(1, len(rs), figsize=(4.5 * len(rs), 3.0), squeeze=False)
    for ax, r in zip(axes[0], rs):
        proj = r.result.projections[:, :, 0]
        for c in range(proj.shape[0]):
            ax.plot(proj[c], lw=0.7)
        ax.set(title=f"{r.method}, width {widest}", xlabel="draw", ylabel="projection 1")
    fig.tight_layout()
    return fig


def _mmd_figure(rows):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 3.3))
    for d in sorted({r[0] for r in rows}):
        pts = sorted((w, m, s) for dd, w, m, s in rows if dd == d)
        ax.errorbar(
            [p[0] for p in pts],
            [p[1] for p in pts],
            yerr=[2.0 * p[2] for p in pts],
            fmt="o-",
            capsize=3,
            label=f"{d} hidden layer(s)",
        )
    ax.set_xscale("log")
    widths = sorted({r[1] for r in rows})
    ax.set_xticks(widths, [str(w) for w in widths], minor=False)
    ax.set_xticks([], minor=True)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set(xlabel="width", ylabel="unbiased MMD$^2$ to NNGP")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def bayes_report(ctx: ReportContext, *, wait_for: Sequence[Future] = ()) -> ReportSection:
    """The sampling section: repriorised sampling vs width, traces, MMD^2 vs width.

    Args:
        ctx: the report context.
        wait_for: work running in other threads (e.g. another report section) that must
            finish before the sampler runs are timed, so that it does not slow them.
    """
    import jax

    section = ReportSection(title="bayes: wide BNN posteriors (repriorised MCMC, GP limit)")
    t0 = time.perf_counter()
    if ctx.quick:
        widths, methods = [32, 256], ("collapsed-ghmc", "plain-ghmc")
        cfg = dict(n_data=20, chains=4, num_warmup=150, num_samples=300)
        mmd_widths, mmd_samples = [4, 256], 150
    else:
        widths = [16, 64, 256, 1024]
        methods = ("repriorised-ghmc", "collapsed-ghmc", "plain-ghmc", "plain-nuts")
        cfg = dict(n_data=50, chains=4, num_warmup=300, num_samples=600)
        mmd_widths, mmd_samples = [4, 16, 64, 256, 1024], 400
    key = jax.random.key(ctx.seed)
    k1, k2 = jax.random.split(key)
    cfg.update(noise_std=0.3, seed=ctx.seed)
    # Compilation dominates: compile every sampler run in two threads (XLA compiles
    # without the GIL) while the MMD study runs, then time the runs one at a time.
    jobs = [(m, w) for w in widths for m in methods]
    with ThreadPoolExecutor(max_workers=2) as pool:
        mmd = pool.submit(
            mmd_vs_width, k2, mmd_widths, (1, 2, 3), num_samples=mmd_samples, progress=ctx.bar
        )
        bar = ctx.bar(total=len(jobs), desc="bayes: compiling sampler runs")
        for done in as_completed(
            [pool.submit(precompile, sample_bnn, k1, w, m, **cfg) for m, w in jobs]
        ):
            done.result()
            bar.update()
        bar.close()
        rows = mmd.result()
    for f in wait_for:
        f.result()
    runs = ess_vs_width(k1, widths, methods, progress=ctx.bar, **cfg)
    section.text(
        "Posterior of a one-hidden-layer ReLU network (NTK parameterization, raw "
        f"parameters ~ N(0,1)) on {cfg['n_data']} toy regression points, noise std 0.3. "
        "Repriorised: the readout is re-expressed relative to its exact conditional "
        "posterior (Hron et al. 2022) and sampled with generalised HMC (one leapfrog step, "
        "partial momentum refresh with persistence 0.95, Metropolis correction with Neal's "
        "non-reversible uniform); collapsed: the same sampler on the hidden weights "
        "alone with the readout integrated out, and the repriorised readout phi ~ N(0, I) "
        "(its exact posterior) drawn afresh for every stored draw; plain: the raw "
        "parameters with "
        "the same sampler" + (" or blackjax NUTS" if "plain-nuts" in methods else "") + ". "
        "ESS is the smallest rank-normalised bulk ESS over 8 fixed random projections of "
        "the test-set predictions; ESS/second counts the compiled run (warm-up included). "
        f"Runs whose max R-hat exceeds {RHAT_OK} have not mixed across chains and their ESS "
        "is not trustworthy."
        + (
            " Quick mode runs the collapsed and plain samplers only."
            if "repriorised-ghmc" not in methods
            else ""
        )
    )
    add_figure(
        section,
        _ess_figure,
        runs,
        caption="Function-space ESS per gradient and per second vs width",
    )
    section.table(HEADER, [r.row() for r in runs], "Sampler runs (4 chains each)")
    add_figure(section, _trace_figure, runs, caption="Trace of the first function-space projection")
    by = {(r.method, r.width): r for r in runs}
    top = max(widths)
    plain = by[("plain-ghmc", top)]
    for method, label in (("repriorised-ghmc", ""), ("collapsed-ghmc", "collapsed: ")):
        if method not in methods:
            continue
        _gain_metric(
            section,
            f"{label}ESS/grad gain over plain GHMC at width {top}",
            by[(method, top)],
            plain,
        )
    section.metric(
        "divergences (all runs)",
        sum(r.result.divergences for r in runs),
        unit="count",
        better="lower",
    )
    section.metric(
        "non-finite proposals (all runs)",
        sum(r.result.nonfinite for r in runs),
        unit="count",
        better="lower",
    )

    add_figure(
        section,
        _mmd_figure,
        rows,
        caption=f"Unbiased MMD^2 (RBF kernel) between {mmd_samples} prior draws of ReLU MLPs at 4 "
        "inputs and draws of their NNGP, against width (Matthews et al. 2018)",
    )
    section.table(
        ["depth", "width", "MMD^2", "std. error"],
        [list(r) for r in rows],
        f"MMD^2 to the NNGP with jackknife standard errors ({mmd_samples} draws each; error "
        "bars in the figure are 2 standard errors). Differences between widths smaller "
        "than about twice the standard errors are noise.",
    )
    for d in (1, 2, 3):
        pts = [(m, s) for dd, w, m, s in rows if dd == d]
        section.metric(
            f"MMD^2 depth {d} at the narrowest and widest width ({min(mmd_widths)}, "
            f"{max(mmd_widths)})",
            [pts[0][0], pts[-1][0]],
            unit="1",
            better="lower",
            se=[pts[0][1], pts[-1][1]],
        )
    section.metric(
        "sampling section seconds", round(time.perf_counter() - t0, 1), summary=False, unit="s"
    )
    return section


def _gain_metric(section: ReportSection, name: str, run, plain) -> None:
    """ESS/gradient of ``run`` over ``plain``; a headline only when both chains mixed
    (max R-hat at most 1.05, the rule stated in the section's text)."""
    gain = round(run.ess_per_gradient / plain.ess_per_gradient, 2)
    rhats = {r.method: function_space_ess(r.result.projections)["max_rhat"] for r in (run, plain)}
    bad = {m: v for m, v in rhats.items() if not v <= RHAT_OK}
    note = ""
    if bad:
        note = (
            "not converged: max R-hat "
            + ", ".join(f"{v:.2f} ({m})" for m, v in sorted(bad.items()))
            + f" > {RHAT_OK}"
        )
    section.metric(name, gain, summary=not bad, unit="1", better="higher", note=note)


def report(ctx: ReportContext):
    """Report hook: this package's sections (sampling, real images, approximate
    inference). The approximate-inference section (and in quick mode, where it times no
    sampler, the image section) is computed in a second thread while the sampling
    section compiles (XLA compiles without Python's global lock); the sampler runs are
    timed only after that thread's work has finished."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        background = [pool.submit(approx_report.report, ctx)]
        if ctx.quick:
            background.append(pool.submit(image_report, ctx))
        sampling = bayes_report(ctx, wait_for=background)
        images = background[1].result() if ctx.quick else image_report(ctx)
    return [sampling, images, background[0].result()]


command = Command(
    name="bayes",
    help="Wide Bayesian neural networks: repriorised MCMC, exact sampling, MMD, dropout.",
    configure=configure,
    run=run,
    report=report,
    order=20,
)
