"""The ``widelab`` command: package subcommands and the combined report."""

from __future__ import annotations

import argparse
import datetime
import html
import json
import sys
import time
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from .cliargs import UsageError, check_output_dir, check_output_file, nonnegative_int
from .command import Command, ReportContext, ReportSection, atomic_write

GROUP = "widelab.commands"


def discover() -> list[Command]:
    """Load every installed package's :class:`Command` (entry-point group
    ``widelab.commands``), sorted by report order then name."""
    found = {}
    for ep in entry_points(group=GROUP):
        try:
            cmd = ep.load()
        except Exception as e:  # a broken plug-in must not take the command down
            print(f"widelab: could not load plug-in {ep.name!r}: {e}", file=sys.stderr)
            continue
        if isinstance(cmd, Command):
            found[cmd.name] = cmd
    return sorted(found.values(), key=lambda c: (c.order, c.name))


def _core_report(ctx: ReportContext) -> ReportSection:
    from .report_core import core_report

    return core_report(ctx)


command = Command(
    name="core",
    help="Finite networks from the layer algebra (a training demo).",
    report=_core_report,
    order=0,
)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #446}h2{color:#335;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;
text-align:right}th{background:#eef}caption{caption-side:top;font-style:italic}
figure{margin:1em 0}img{max-width:100%}.metrics td:first-child{text-align:left}
.error{color:#a00;white-space:pre-wrap;font-family:monospace}
"""


def render_html(sections: list[ReportSection], quick: bool, seconds: float) -> str:
    """A self-contained HTML page holding every section."""
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    mode = "quick" if quick else "full"
    body = "\n".join(s.to_html() for s in sections)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>widelab report</title>"
        f"<style>{_STYLE}</style></head><body><h1>widelab report</h1>"
        f"<p>{html.escape(stamp)} &middot; {mode} mode &middot; {seconds:.1f} s</p>"
        f"{body}</body></html>"
    )


def run_report(args: argparse.Namespace, commands: list[Command]) -> int:
    """Run every package's report hook and write ``report.html`` and the JSON."""
    out_dir = check_output_dir(args.out, "--out")
    if args.json:
        check_output_file(args.json, "--json")
    only = set(args.only.split(",")) if args.only else None
    known = {c.name for c in commands if c.report is not None}
    if only is not None and not only <= known:
        unknown = ", ".join(sorted(only - known))
        print(
            f"widelab report: --only names no installed report: {unknown} "
            f"(installed: {', '.join(sorted(known))})",
            file=sys.stderr,
        )
        return 2
    ctx = ReportContext(
        quick=args.quick, out_dir=out_dir, seed=args.seed, progress=sys.stderr.isatty()
    )
    sections: list[ReportSection] = []
    failures = 0
    start = time.perf_counter()
    hooks = [c for c in commands if c.report is not None and (only is None or c.name in only)]
    for cmd in hooks:
        t0 = time.perf_counter()
        print(f"[widelab] {cmd.name}: running ...", file=sys.stderr, flush=True)
        try:
            produced = cmd.report(ctx)
            produced = list(produced) if isinstance(produced, list | tuple) else [produced]
        except Exception:
            failures += 1
            tb = traceback.format_exc()
            print(tb, file=sys.stderr)
            failed = ReportSection(title=f"{cmd.name} (failed)")
            failed.text("This section failed:\n" + tb)
            failed.summary.append("FAILED (see report)")
            produced = [failed]
        produced[0].metrics.setdefault("seconds", round(time.perf_counter() - t0, 2))
        sections.extend(produced)
        print(
            f"[widelab] {cmd.name}: done in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    seconds = time.perf_counter() - start
    page = render_html(sections, args.quick, seconds)
    atomic_write(out_dir / "report.html", page)
    figures = {
        "quick": args.quick,
        "seconds": round(seconds, 2),
        "sections": {s.title: s.metrics for s in sections},
    }
    json_path = Path(args.json) if args.json else out_dir / "report.json"
    atomic_write(json_path, json.dumps(figures, indent=2, default=_json_default))
    print("\nwidelab report summary")
    for s in sections:
        print(f"== {s.title}")
        for line in s.summary:
            print(f"   {line}")
    print(f"\nwrote {out_dir / 'report.html'} and {json_path} in {seconds:.1f} s")
    return 1 if failures else 0


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2.

    Sub-parsers made with ``add_subparsers`` are of this class too, so every package's
    flags get the same treatment.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(commands: list[Command]) -> argparse.ArgumentParser:
    """The top-level parser with ``report`` and one subcommand per package."""
    parser = Parser(
        prog="widelab",
        description="widelab: infinite-width kernels, wide BNNs, two-stage recommenders, "
        "exposure games and knowledge-graph language models.",
        epilog="installed packages: " + ", ".join(c.name for c in commands),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rep = sub.add_parser("report", help="Run every installed package's headline study.")
    rep.add_argument("--quick", action="store_true", help="small settings (minutes on 2 cores)")
    rep.add_argument("--out", default="widelab-report", help="output folder (report.html)")
    rep.add_argument("--json", default=None, help="where to write the headline figures JSON")
    rep.add_argument("--seed", type=nonnegative_int, default=0, help="base random seed")
    rep.add_argument("--only", default=None, help="comma-separated package names to include")
    for cmd in commands:
        if cmd.run is None:
            continue
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.configure is not None:
            cmd.configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``widelab`` console script."""
    commands = discover()
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "report":
            return run_report(args, commands)
        by_name = {c.name: c for c in commands}
        return int(by_name[args.command].run(args) or 0)
    except UsageError as err:
        print(f"widelab {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
