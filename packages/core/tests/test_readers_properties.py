"""Property tests of the MovieLens and Last.fm readers on randomly corrupted files.

A valid file is drawn, then corrupted (truncation, a wrong separator, a field replaced by
text of the wrong type, another encoding, a huge number, stray bytes). An independent,
line-by-line reading of the documented format in this file says what the bytes mean:
either records (then the reader must return exactly them) or a malformed file (then the
reader must raise ``ValueError`` naming the file).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from widelab_core.datasets import read_lastfm_360k, read_movielens_1m, read_movielens_100k

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT = re.compile(r"[+-]?[0-9]+")
FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
I64 = 2**63 - 1
PLAYS = "usersha1-artmbid-artname-plays.tsv"


class Malformed(Exception):
    pass


def _lines(raw: bytes, encoding: str):
    for chunk in raw.split(b"\n"):
        try:
            line = chunk.decode(encoding).rstrip("\r\n")
        except UnicodeDecodeError:
            raise Malformed from None
        if line.strip():
            yield line


def _int(text: str) -> int:
    if not INT.fullmatch(text) or abs(int(text)) > I64 + (text.startswith("-")):
        raise Malformed
    return int(text)


def oracle_movielens(raw: bytes, sep: str) -> dict:
    """``{(user, item): (rating, timestamp)}`` of a ratings file, or Malformed."""
    out = {}
    for line in _lines(raw, "latin-1"):
        fields = line.split(sep)
        if len(fields) != 4:
            raise Malformed
        u, i, r, t = fields
        key = (_int(u), _int(i))
        if not FLOAT.fullmatch(r) or not np.isfinite(float(r)) or not 1 <= float(r) <= 5:
            raise Malformed
        stamp = _int(t)
        if key in out:
            raise Malformed
        out[key] = (float(r), stamp)
    if not out:
        raise Malformed
    return out


def oracle_lastfm(raw: bytes) -> dict:
    """``{(user, artist name): summed plays}`` of a plays file (nonzero sums), or
    Malformed."""
    out: dict = {}
    n_lines = 0
    for line in _lines(raw, "utf-8"):
        n_lines += 1
        fields = line.split("\t")
        if len(fields) != 4:
            raise Malformed
        user, mbid, name, plays = fields
        if not user:
            raise Malformed
        n = _int(plays)
        if n < 0:
            raise Malformed
        key = name or mbid
        if key:
            out[(user, key)] = out.get((user, key), 0) + n
    if n_lines == 0 or any(v > I64 for v in out.values()):
        raise Malformed
    return {k: v for k, v in out.items() if v}


# ------------------------------------------------------------------ valid files


@st.composite
def movielens_records(draw):
    pairs = draw(
        st.lists(
            st.tuples(st.integers(1, 40), st.integers(1, 60)),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    ratings = draw(st.lists(st.integers(1, 5), min_size=len(pairs), max_size=len(pairs)))
    stamps = draw(st.lists(st.integers(0, 2**40), min_size=len(pairs), max_size=len(pairs)))
    return [(u, i, r, t) for (u, i), r, t in zip(pairs, ratings, stamps)]


@st.composite
def lastfm_records(draw):
    users = [f"{k:040x}" for k in range(draw(st.integers(1, 4)))]
    names = draw(
        st.lists(st.text(st.characters(blacklist_characters="\t\n\r"), max_size=6), min_size=1)
    )
    n = draw(st.integers(1, 10))
    return [
        (
            draw(st.sampled_from(users)),
            draw(st.sampled_from(["", "f59c5520-5f46-4d2c-b2c4-822eabf53419"])),
            draw(st.sampled_from(names)),
            draw(st.integers(0, 10**6)),
        )
        for _ in range(n)
    ]


def corruptions():
    """Functions ``(raw bytes, draw) -> corrupted bytes``."""

    def truncate(raw, draw):
        return raw[: draw(st.integers(0, len(raw)))]

    def separator(raw, draw):
        lines = raw.split(b"\n")
        k = draw(st.integers(0, len(lines) - 1))
        old = draw(st.sampled_from([b"\t", b"::", b":"]))
        new = draw(st.sampled_from([b",", b" ", b";", b"\t", b"::", b""]))
        lines[k] = lines[k].replace(old, new, 1)
        return b"\n".join(lines)

    def field(raw, draw):
        lines = raw.split(b"\n")
        k = draw(st.integers(0, len(lines) - 1))
        sep = b"::" if b"::" in lines[k] else b"\t"
        fields = lines[k].split(sep)
        j = draw(st.integers(0, len(fields) - 1))
        fields[j] = draw(
            st.sampled_from(
                [
                    b"",
                    b"abc",
                    b"1_0",
                    b"3.5",
                    b"-2",
                    b"nan",
                    b"inf",
                    b"1e3",
                    b" 4",
                    b"0",
                    b"99",
                    str(2**63).encode(),
                    str(2**64 + 7).encode(),
                    str(-(2**63)).encode(),
                    "\u0664".encode(),
                    b"\xff\xfe",
                ]
            )
        )
        lines[k] = sep.join(fields)
        return b"\n".join(lines)

    def encoding(raw, draw):
        enc = draw(st.sampled_from(["utf-16", "utf-32", "cp500"]))
        return raw.decode("latin-1").encode(enc)

    def stray_bytes(raw, draw):
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.binary(min_size=1, max_size=4))
        return raw[:at] + junk + raw[at:]

    def duplicate_line(raw, draw):
        lines = [x for x in raw.split(b"\n") if x]
        return raw + draw(st.sampled_from(lines)) + b"\n"

    def blank_lines_and_crlf(raw, draw):
        return raw.replace(b"\n", draw(st.sampled_from([b"\r\n", b"\n\n", b"\n \n"])))

    return [
        truncate,
        separator,
        field,
        encoding,
        stray_bytes,
        duplicate_line,
        blank_lines_and_crlf,
    ]


CORRUPTIONS = corruptions()


def _corrupt(raw: bytes, data) -> bytes:
    fn = data.draw(st.sampled_from(CORRUPTIONS), label="corruption")
    return fn(raw, data.draw)


def _check(raw: bytes, file_name: str, read, oracle):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file_name
        path.write_bytes(raw)
        try:
            expected = oracle(raw)
        except Malformed:
            expected = None
        try:
            got = read(path)
        except ValueError as err:
            event("rejected")
            assert expected is None, f"rejected a valid file: {err}"
            assert str(path) in str(err), f"error does not name the file: {err}"
            return
        assert expected is not None, f"accepted a malformed file: {raw!r}"
        event("accepted")
        return got, expected


def _movielens_entries(data):
    m, t = data.matrix.tocoo(), data.timestamps.tocoo()
    out = {}
    for r, c, v, s in zip(m.row, m.col, m.data, t.data):
        out[(int(data.user_ids[r]), int(data.item_ids[c]))] = (float(v), int(s))
    return out


@pytest.mark.parametrize(
    "sep, name, reader",
    [("\t", "u.data", read_movielens_100k), ("::", "ratings.dat", read_movielens_1m)],
    ids=["100k", "1m"],
)
@SETTINGS
@given(records=movielens_records(), data=st.data())
def test_movielens_corrupted(sep, name, reader, records, data):
    raw = "".join(sep.join(map(str, rec)) + "\n" for rec in records).encode()
    raw = _corrupt(raw, data)
    res = _check(raw, name, reader, lambda b: oracle_movielens(b, sep))
    if res is not None:
        got, expected = res
        assert _movielens_entries(got) == {k: (np.float32(v[0]), v[1]) for k, v in expected.items()}


@SETTINGS
@given(records=lastfm_records(), data=st.data())
def test_lastfm_corrupted(records, data):
    raw = "".join(f"{u}\t{m}\t{n}\t{p}\n" for u, m, n, p in records).encode("utf-8")
    raw = _corrupt(raw, data)
    res = _check(raw, PLAYS, read_lastfm_360k, oracle_lastfm)
    if res is not None:
        got, expected = res
        m = got.matrix.tocoo()
        names = got.item_attributes["name"]
        mbids = got.item_attributes["mbid"]
        entries = {
            (str(got.user_ids[r]), str(names[c] or mbids[c])): float(v)
            for r, c, v in zip(m.row, m.col, m.data)
        }
        assert entries == {k: float(np.float32(v)) for k, v in expected.items()}


@SETTINGS
@given(records=movielens_records())
def test_movielens_valid_files_round_trip(records):
    raw = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in records).encode()
    got, expected = _check(raw, "u.data", read_movielens_100k, lambda b: oracle_movielens(b, "\t"))
    assert _movielens_entries(got) == {k: (float(v[0]), v[1]) for k, v in expected.items()}
