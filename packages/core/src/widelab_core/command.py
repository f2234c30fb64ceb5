"""The plug-in protocol of the ``widelab`` command.

Each installed package exposes a :class:`Command` under the entry-point group
``widelab.commands``. ``widelab <name> ...`` hands its arguments to ``configure`` /
``run``; ``widelab report`` calls every package's ``report`` hook with a
:class:`ReportContext` and collects the :class:`ReportSection` it returns.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import io
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class ReportContext:
    """What a report hook gets.

    Attributes:
        quick: keep the whole package section to well under a minute on 2 CPU cores.
        out_dir: folder the report is written to (hooks may write extra files here).
        seed: base seed for every random choice in the study.
        progress: whether to show progress bars (False when not on a terminal; then each
            finished step prints one plain line with its elapsed time instead).
        started: ``time.perf_counter()`` at the start of the report (for elapsed times).
    """

    quick: bool = True
    out_dir: Path = Path("widelab-report")
    seed: int = 0
    progress: bool = False
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def bar(self, iterable: Iterable | None = None, **kwargs):
        """A progress bar over ``iterable`` (or one driven by ``update``).

        On a terminal this is a tqdm bar; otherwise a :class:`PlainProgress` that prints
        one line per finished step (``desc``, step count, seconds since the report began).
        """
        if not self.progress:
            return PlainProgress(iterable, self.started, **kwargs)
        from tqdm.auto import tqdm

        return tqdm(iterable, leave=False, **kwargs)


class PlainProgress:
    """Progress for logs: one line on stderr per finished step, with elapsed time.

    It stands in for a tqdm bar: iterate over it, or call :meth:`update` and :meth:`close`.

    Example:
        >>> import time
        >>> for _ in PlainProgress([1, 2], time.perf_counter(), desc="demo", file=None):
        ...     pass
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        started: float | None = None,
        *,
        desc: str = "",
        total: int | None = None,
        file: Any = "stderr",
        **_ignored: Any,
    ):
        self.iterable = iterable
        self.started = time.perf_counter() if started is None else started
        self.desc = desc or "step"
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total = total
        self.n = 0
        self.file = file  # "stderr": sys.stderr at print time; None: silent

    def __iter__(self):
        for item in self.iterable if self.iterable is not None else ():
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        """Count ``n`` finished steps and print a line."""
        self.n += n
        if self.file is None:
            return
        out = sys.stderr if self.file == "stderr" else self.file
        of = f"/{self.total}" if self.total is not None else ""
        elapsed = time.perf_counter() - self.started
        print(f"[widelab] {self.desc}: {self.n}{of} done at {elapsed:.1f} s", file=out)
        out.flush()

    def close(self) -> None:
        """Nothing to tear down (kept for tqdm compatibility)."""

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass
class ReportSection:
    """One package's part of the report: prose, figures, tables and headline figures.

    Build it with :meth:`text`, :meth:`figure`, :meth:`table` and :meth:`metric`; the
    ``widelab report`` command renders it to self-contained HTML and JSON.
    """

    title: str
    blocks: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary: list[str] = dataclasses.field(default_factory=list)
    details: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def text(self, paragraph: str) -> ReportSection:
        """Add a paragraph (plain text, escaped)."""
        self.blocks.append(("text", paragraph))
        return self

    def figure(self, fig, caption: str = "") -> ReportSection:
        """Add a matplotlib figure, embedded as a PNG; the figure is closed."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.blocks.append(("figure", (base64.b64encode(buf.getvalue()).decode(), caption)))
        return self

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = ""
    ) -> ReportSection:
        """Add a table; floats are shown with 4 significant digits."""
        self.blocks.append(("table", (list(header), [list(r) for r in rows], caption)))
        return self

    def metric(
        self,
        name: str,
        value: Any,
        summary: bool = True,
        *,
        unit: str = "",
        better: str | None = None,
        se: Any = None,
        note: str = "",
    ) -> ReportSection:
        """Record a figure for the JSON; a headline (``summary=True``) also goes to the
        terminal summary.

        Args:
            name: what the figure is, in words (unique within the section).
            value: a number, a list of numbers, or None (with a ``note`` saying why).
            summary: True for a headline figure; False for a figure kept only in the JSON.
            unit: its unit (``"s"``, ``"FLOP"``, ``"1"`` for a ratio or a rate, ...).
            better: ``"higher"`` or ``"lower"``, the direction that is better, or
                ``"neither"`` for a descriptive figure; needed for a headline.
            se: standard error of ``value`` (same shape), for noisy estimates.
            note: a caveat shown next to the figure (e.g. why it is not a headline).

        Returns:
            The section, so calls chain.

        Raises:
            TypeError: ``value`` is not a number, a list of numbers or None (strings such as
                ``"a -> b"`` belong in the text, the figures as a list).
            ValueError: ``better`` is not ``"higher"``, ``"lower"``, ``"neither"`` or None,
                or a headline has no ``better``.

        Example:
            >>> s = ReportSection("demo").metric("accuracy", 0.93, unit="1", better="higher")
            >>> s.details["accuracy"]["better"]
            'higher'
        """
        value = _as_figure(name, value)
        se = None if se is None else _as_figure(f"{name} (standard error)", se)
        if better not in (None, "higher", "lower", "neither"):
            raise ValueError(
                f"metric {name!r}: better must be 'higher', 'lower', 'neither' or None, "
                f"got {better!r}"
            )
        if summary and better is None:
            raise ValueError(
                f"metric {name!r} is a headline (summary=True) but says no better direction: "
                "pass better='higher', 'lower' or 'neither', or summary=False"
            )
        self.metrics[name] = value
        self.details[name] = {
            "value": value,
            "unit": unit,
            "better": better,
            "headline": bool(summary),
            "se": se,
            "note": note,
        }
        if summary:
            shown = _fmt(value) + (f" ± {_fmt(se)}" if se is not None else "")
            self.summary.append(f"{name}: {shown}{' ' + unit if unit not in ('', '1') else ''}")
        elif note:
            self.summary.append(f"{name}: {_fmt(value)} ({note}; not a headline)")
        return self

    def to_html(self) -> str:
        """Render this section as an HTML fragment."""
        out = [f"<section><h2>{html.escape(self.title)}</h2>"]
        for kind, payload in self.blocks:
            if kind == "text":
                out.append(f"<p>{html.escape(payload)}</p>")
            elif kind == "figure":
                data, caption = payload
                out.append(
                    f'<figure><img alt="{html.escape(caption)}" '
                    f'src="data:image/png;base64,{data}"/>'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
            elif kind == "table":
                header, rows, caption = payload
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>"
                    for r in rows
                )
                cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
                out.append(
                    f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                )
        if self.metrics:
            rows = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}"
                + (f" ± {html.escape(_fmt(d['se']))}" if d.get("se") is not None else "")
                + f"</td><td>{html.escape(d.get('unit', ''))}</td>"
                f"<td>{html.escape(_better_words(d.get('better')))}</td>"
                f"<td>{html.escape(d.get('note', ''))}</td></tr>"
                for k, v in self.metrics.items()
                for d in [self.details.get(k, {})]
            )
            out.append(
                '<table class="metrics"><thead><tr><th>figure</th><th>value</th><th>unit</th>'
                f"<th>better</th><th>note</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        out.append("</section>")
        return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if v is None:
        return "n/a"
    return str(v)


def _better_words(better: str | None) -> str:
    return {"higher": "higher is better", "lower": "lower is better"}.get(better or "", "")


def _as_figure(name: str, value: Any) -> Any:
    """A JSON-ready figure: bool, int, finite float, None, or a (nested) list of them.

    Non-finite floats become None, since JSON has no NaN.
    """
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()  # numpy / jax scalars and arrays
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_as_figure(name, v) for v in value]
    raise TypeError(
        f"metric {name!r}: value must be a number, a list of numbers or None, got "
        f"{type(value).__name__} {value!r}"
    )


@dataclasses.dataclass(frozen=True)
class Command:
    """A package's entry in the ``widelab`` command.

    Attributes:
        name: the subcommand (``widelab <name>``).
        help: one line for ``widelab --help``.
        configure: adds arguments (and sub-subcommands) to the subcommand's parser.
        run: executes the parsed arguments; returns an exit code.
        report: the package's report hook (returns one section or a list), or None.
        order: position of the section in the report (lower first).
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None] | None = None
    run: Callable[[argparse.Namespace], int] | None = None
    report: Callable[[ReportContext], ReportSection] | None = None
    order: int = 50


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a crash
    never leaves a half-written file."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
