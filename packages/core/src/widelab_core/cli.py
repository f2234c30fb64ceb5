"""The ``widelab`` command: package subcommands and the combined report.

Start-up stays light: ``widelab --help`` lists the installed commands from entry-point
metadata (name and the distribution's one-line summary) without importing any package;
``widelab <name> ...`` imports only that package; ``widelab report`` imports them all.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import os
import sys
import time
import traceback
from importlib.metadata import EntryPoint, entry_points
from importlib.metadata import version as dist_version
from pathlib import Path

from .cliargs import UsageError, nonnegative_int
from .command import Command, ReportContext, ReportSection, atomic_write

GROUP = "widelab.commands"


def _core_report(ctx: ReportContext) -> ReportSection:
    try:
        from .report_core import core_report
    except ImportError as e:  # the [report] extra is not installed
        section = ReportSection(title="core: finite networks from the layer algebra")
        section.text(
            f"The core training demo needs the report extra ({e.name} is missing): "
            "pip install 'widelab-core[report]'."
        )
        return section
    return core_report(ctx)


command = Command(
    name="core",
    help="Finite networks from the layer algebra (a training demo).",
    report=_core_report,
    order=0,
)
"""Core's own entry: a report section only (no subcommand); built in, not a plug-in."""


def plugin_entry_points() -> dict[str, EntryPoint]:
    """The installed plug-ins' entry points by command name, without loading any."""
    found = {}
    for ep in entry_points(group=GROUP):
        if ep.name != command.name:
            found.setdefault(ep.name, ep)
    return dict(sorted(found.items()))


def _summary(ep: EntryPoint) -> str:
    """The one-line summary of the distribution that provides ``ep`` (no import)."""
    dist = getattr(ep, "dist", None)
    return (dist.metadata.get("Summary") or "") if dist is not None else ""


def _load(ep: EntryPoint) -> Command | None:
    try:
        cmd = ep.load()
    except Exception as e:  # a broken plug-in must not take the command down
        print(f"widelab: could not load plug-in {ep.name!r}: {e}", file=sys.stderr)
        return None
    return cmd if isinstance(cmd, Command) else None


def discover() -> list[Command]:
    """Core's command and every installed package's :class:`Command` (entry-point group
    ``widelab.commands``), sorted by report order then name."""
    found = {command.name: command}
    for ep in plugin_entry_points().values():
        cmd = _load(ep)
        if cmd is not None:
            found.setdefault(cmd.name, cmd)
    return sorted(found.values(), key=lambda c: (c.order, c.name))


def versions() -> dict[str, str]:
    """Version of each installed widelab package, keyed by command name (``core``,
    ``kernels``, ...), read from distribution metadata."""
    out = {"core": dist_version("widelab-core")}
    for name, ep in plugin_entry_points().items():
        dist = getattr(ep, "dist", None)
        if dist is not None:
            out[name] = dist.version
    return out


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


def _unwritable(path: Path, kind: str) -> str | None:
    """Why ``path`` cannot be written as a ``kind`` ("folder" or "file"), or None.

    Nothing is created: the nearest existing ancestor must be a writable folder.
    """
    path = Path(path).absolute()
    if path.exists():
        if kind == "folder" and not path.is_dir():
            return "it exists and is not a folder"
        if kind == "file" and path.is_dir():
            return "it is a folder"
        target = path if kind == "folder" else path.parent
        return None if os.access(target, os.W_OK | os.X_OK) else f"{target} is not writable"
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    return None


def check_outputs(args: argparse.Namespace) -> list[str]:
    """Problems with the report's output paths (``--out``, ``--json``), found before any
    computation; empty when both can be written."""
    out_dir = Path(args.out)
    problems = []
    why = _unwritable(out_dir, "folder")
    if why:
        problems.append(f"--out {args.out!r} cannot hold the report: {why}")
    for name in ("report.html", "report.json"):
        target = out_dir / name
        if not why and target.is_dir():
            problems.append(f"--out {args.out!r}: {target} is a folder, the report needs a file")
    if args.json:
        why = _unwritable(Path(args.json), "file")
        if why:
            problems.append(f"--json {args.json!r} cannot be written: {why}")
    return problems


def _package_entry(name: str, parts: list[ReportSection], status: str, seconds: float, vers):
    metrics: dict = {}
    for part in parts:
        for key, d in part.details.items():
            metrics[key if key not in metrics else f"{key} ({part.title})"] = d
        for key, value in part.metrics.items():  # figures recorded without details
            if key not in part.details:
                metrics.setdefault(
                    key,
                    {
                        "value": value,
                        "unit": "",
                        "better": None,
                        "headline": False,
                        "se": None,
                        "note": "",
                    },
                )
    return {
        "title": parts[0].title,
        "parts": [p.title for p in parts],
        "version": vers.get(name),
        "status": status,
        "seconds": round(seconds, 2),
        "metrics": metrics,
    }


def run_report(args: argparse.Namespace, commands: list[Command]) -> int:
    """Run every package's report hook and write ``report.html`` and ``report.json``.

    The JSON holds ``widelab`` (the command's version), ``versions`` (each package's),
    ``quick``, ``seed``, ``seconds`` and ``sections`` keyed by package name, each with
    ``title``, ``parts``, ``version``, ``status`` ("ok" or "failed"), ``seconds``,
    ``cpu_seconds`` (CPU time of all threads, a load-independent cost) and ``metrics``: per figure its ``value`` (number, list or null), ``unit``, ``better``
    ("higher", "lower" or null), ``headline``, ``se`` and ``note``.
    """
    out_dir = Path(args.out)
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
    start = time.perf_counter()
    ctx = ReportContext(
        quick=args.quick,
        out_dir=out_dir,
        seed=args.seed,
        progress=sys.stderr.isatty(),
        started=start,
    )
    vers = versions()
    sections: list[ReportSection] = []
    packages: dict[str, dict] = {}
    failures = 0
    hooks = [c for c in commands if c.report is not None and (only is None or c.name in only)]
    for cmd in hooks:
        t0, c0 = time.perf_counter(), time.process_time()
        print(f"[widelab] {cmd.name}: running ...", file=sys.stderr, flush=True)
        status = "ok"
        try:
            produced = cmd.report(ctx)
            produced = list(produced) if isinstance(produced, list | tuple) else [produced]
        except Exception:
            failures += 1
            status = "failed"
            tb = traceback.format_exc()
            print(tb, file=sys.stderr)
            failed = ReportSection(title=f"{cmd.name} (failed)")
            failed.text("This section failed:\n" + tb)
            failed.summary.append("FAILED (see report)")
            produced = [failed]
        seconds = time.perf_counter() - t0
        sections.extend(produced)
        packages[cmd.name] = _package_entry(cmd.name, produced, status, seconds, vers)
        packages[cmd.name]["cpu_seconds"] = round(time.process_time() - c0, 2)
        print(
            f"[widelab] {cmd.name}: done in {seconds:.1f} s "
            f"({time.perf_counter() - start:.1f} s elapsed)",
            file=sys.stderr,
            flush=True,
        )
    seconds = time.perf_counter() - start
    page = render_html(sections, args.quick, seconds)
    atomic_write(out_dir / "report.html", page)
    figures = {
        "widelab": vers["core"],
        "versions": vers,
        "quick": args.quick,
        "seed": args.seed,
        "seconds": round(seconds, 2),
        "sections": packages,
    }
    json_path = Path(args.json) if args.json else out_dir / "report.json"
    atomic_write(json_path, json.dumps(figures, indent=2, allow_nan=False))
    print("\nwidelab report summary")
    for s in sections:
        print(f"== {s.title}")
        for line in s.summary:
            print(f"   {line}")
    print(f"\nwrote {out_dir / 'report.html'} and {json_path} in {seconds:.1f} s")
    return 1 if failures else 0


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2.

    Sub-parsers made with ``add_subparsers`` are of this class too, so every package's
    flags get the same treatment.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(
    commands: list[Command], placeholders: dict[str, str] | None = None
) -> argparse.ArgumentParser:
    """The top-level parser with ``report`` and one subcommand per package.

    Args:
        commands: loaded commands whose subcommands get their full arguments.
        placeholders: ``name -> one-line help`` of installed commands that are not loaded
            (listed in ``--help`` only).
    """
    parser = Parser(
        prog="widelab",
        description="widelab: infinite-width kernels, wide BNNs, two-stage recommenders, "
        "exposure games and knowledge-graph language models.",
        epilog="widelab COMMAND --help shows a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rep = sub.add_parser("report", help="Run every installed package's headline study.")
    rep.add_argument("--quick", action="store_true", help="small settings (minutes on 2 cores)")
    rep.add_argument("--out", default="widelab-report", help="output folder (report.html)")
    rep.add_argument("--json", default=None, help="where to write the figures JSON")
    rep.add_argument("--seed", type=nonnegative_int, default=0, help="base random seed")
    rep.add_argument("--only", default=None, help="comma-separated package names to include")
    loaded = set()
    for cmd in commands:
        if cmd.run is None:
            continue
        loaded.add(cmd.name)
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.configure is not None:
            cmd.configure(p)
    for name, help_text in (placeholders or {}).items():
        if name not in loaded:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``widelab`` console script.

    Only what the command line needs is imported: nothing for ``--help``, one package for
    ``widelab <name> ...``, every package for ``widelab report`` (whose output paths are
    checked first).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    eps = plugin_entry_points()
    first = argv[0] if argv else None
    if first == "report":
        args = build_parser([]).parse_args(argv)
        problems = check_outputs(args)
        for p in problems:
            print(f"widelab report: {p}", file=sys.stderr)
        if problems:
            return 2
        try:
            return run_report(args, discover())
        except UsageError as err:
            print(f"widelab report: {err}", file=sys.stderr)
            return 2
    if first in eps:
        cmd = _load(eps[first])
        if cmd is None or cmd.run is None:
            print(f"widelab: the plug-in {first!r} offers no subcommand", file=sys.stderr)
            return 2
        args = build_parser([cmd]).parse_args(argv)
        try:
            return int(cmd.run(args) or 0)
        except UsageError as err:
            print(f"widelab {first}: {err}", file=sys.stderr)
            return 2
    parser = build_parser([], {name: _summary(ep) for name, ep in eps.items()})
    args = parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
