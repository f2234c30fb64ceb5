"""Text helpers for extraction: sentences with offsets, evidence windows, values."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterator

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")
_MONTHS = {
    m.casefold(): i + 1
    for i, m in enumerate(
        [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ]
    )
}
_MONTHS.update({k[:3]: v for k, v in list(_MONTHS.items())})
_MONTH_RE = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
DATE_RE = re.compile(
    rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}} {_MONTH_RE}\.? \d{{4}}|{_MONTH_RE}\.? \d{{1,2}}, \d{{4}})\b",
    re.IGNORECASE,
)
NUMBER_RE = re.compile(
    r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])"
)


def sentences(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` offsets of the sentences of ``text`` (whitespace trimmed)."""
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        yield from _trimmed(text, pos, m.start())
        pos = m.end()
    yield from _trimmed(text, pos, len(text))


def _trimmed(text: str, a: int, b: int) -> Iterator[tuple[int, int]]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        yield a, b


def sentence_at(text: str, start: int, end: int) -> tuple[int, int]:
    """Offsets of the sentence holding ``text[start:end]`` (spanning sentences if needed)."""
    a, b = start, end
    for s, e in sentences(text):
        if s <= start < e or s < end <= e:
            a, b = min(a, s), max(b, e)
    return a, b


def context_window(text: str, start: int, end: int, chars: int = 240) -> tuple[int, int]:
    """Offsets of a wider window around a span, cut at word boundaries."""
    a = max(0, start - chars)
    b = min(len(text), end + chars)
    if a > 0:
        nxt = text.find(" ", a, start)
        a = nxt + 1 if nxt >= 0 else a
    if b < len(text):
        prv = text.rfind(" ", end, b)
        b = prv if prv >= 0 else b
    return a, b


def find_phrase(text: str, phrase: str) -> Iterator[tuple[int, int]]:
    """Case-insensitive whole-word occurrences of ``phrase`` in ``text``."""
    pat = re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", re.IGNORECASE)
    for m in pat.finditer(text):
        yield m.start(), m.end()


def parse_number(value: str) -> str | None:
    """A number written plainly (``"1,200.50"`` -> ``"1200.50"``), or None."""
    v = value.strip().replace(",", "")
    return v if re.fullmatch(r"[-+]?\d+(?:\.\d+)?", v) else None


def parse_date(value: str) -> str | None:
    """An ISO ``YYYY-MM-DD`` date from ISO, ``3 March 1961`` or ``March 3, 1961``; else None."""
    v = value.strip().rstrip(".")
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", v)
    if m:
        y, mo, d = map(int, m.groups())
    else:
        m = re.fullmatch(r"(\d{1,2}) ([A-Za-z]+)\.? (\d{4})", v)
        if m:
            d, mon, y = int(m.group(1)), m.group(2), int(m.group(3))
        else:
            m = re.fullmatch(r"([A-Za-z]+)\.? (\d{1,2}), (\d{4})", v)
            if not m:
                return None
            mon, d, y = m.group(1), int(m.group(2)), int(m.group(3))
        mo = _MONTHS.get(mon.casefold()) or _MONTHS.get(mon.casefold()[:3])
        if mo is None:
            return None
    try:
        return _dt.date(y, mo, d).isoformat()
    except ValueError:
        return None
