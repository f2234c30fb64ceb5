"""Progress over blocks: a tqdm bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Counts finished blocks; shows done/total, rate and the time left.

    ``enabled=None`` shows a bar only when stderr is a terminal; when it is not, and
    ``enabled`` is true, a line like ``kernels compute: 12/40 blocks (30%), 0.52
    blocks/s, about 0m54s left`` is printed every ``every`` seconds and at the end.
    """

    def __init__(self, total: int, initial: int, enabled: bool | None, every: float, what: str):
        self.total, self.done, self.every, self.what = total, initial, every, what
        self.start_done, self.t0 = initial, time.monotonic()
        self.last = self.t0
        self.printed = -1
        tty = sys.stderr.isatty()
        self.bar = None
        self.lines = bool(enabled) and not tty
        if (enabled is None or enabled) and tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="block", desc=what)
        if self.lines and initial:
            print(f"{what}: resuming, {initial}/{total} blocks already done", file=sys.stderr)

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = _duration(left) if left == left else "unknown"
        return (
            f"{self.what}: {self.done}/{self.total} blocks ({pct:.0f}%), "
            f"{rate:.3g} blocks/s, about {eta} left"
        )

    def update(self, k: int) -> None:
        self.done += k
        if self.bar is not None:
            self.bar.update(k)
        elif self.lines and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self.printed = self.done
            print(self.line(), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.lines and self.printed != self.done:
            print(self.line(), file=sys.stderr, flush=True)
