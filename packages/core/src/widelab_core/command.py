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
        progress: whether to show progress bars (False when not on a terminal).
    """

    quick: bool = True
    out_dir: Path = Path("widelab-report")
    seed: int = 0
    progress: bool = False

    def bar(self, iterable: Iterable | None = None, **kwargs):
        """A tqdm progress bar, silent when ``progress`` is False."""
        from tqdm.auto import tqdm

        return tqdm(iterable, disable=not self.progress, leave=False, **kwargs)


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

    def metric(self, name: str, value: Any, summary: bool = True) -> ReportSection:
        """Record a headline figure (goes to the JSON, and to the terminal summary)."""
        self.metrics[name] = value
        if summary:
            self.summary.append(f"{name}: {_fmt(value)}")
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
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>"
                for k, v in self.metrics.items()
            )
            out.append(f'<table class="metrics"><tbody>{rows}</tbody></table>')
        out.append("</section>")
        return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


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
