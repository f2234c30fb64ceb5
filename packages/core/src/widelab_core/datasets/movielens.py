"""Readers for the MovieLens-100K and MovieLens-1M file formats (GroupLens).

Nothing is downloaded: point the readers at an unpacked copy of ``ml-100k`` or ``ml-1m``.
Format references: the ``README`` shipped with each archive (F. M. Harper and J. A.
Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._base import (
    Indexer,
    InteractionData,
    check_bounds,
    check_range,
    column,
    csr_from_entries,
    empty_file,
    find_file,
    int_array,
    malformed,
    read_lines,
    split,
    to_float,
    to_int,
)

__all__ = ["read_movielens", "read_movielens_100k", "read_movielens_1m"]

#: Genre flag order of ML-100K's ``u.item`` (also listed in its ``u.genre``).
GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
#: The 18 genres of ML-1M's ``movies.dat`` (ML-100K's list without "unknown").
GENRES_1M = GENRES_100K[1:]
#: Allowed ratings of ML-100K and ML-1M: whole stars from 1 to 5 (their READMEs).
RATING_RANGE = (1.0, 5.0)
#: The only bytes of a ratings file the vectorised parser takes: digits, signs, decimal
#: points, exponents, the separator and line breaks. Anything else (``_``, blanks,
#: letters) goes to the line parser, which applies the strict rules of ``to_int``.
_FAST_BYTES = frozenset(b"0123456789+-.eE\n")


def _ratings_fast(path: Path, sep: str):
    """Vectorised parse of a clean ratings file, or ``None`` to defer to the line parser.

    Accepts exactly what the line parser accepts, without blank lines or carriage
    returns: every line has 3 separators and fields that ``int`` / ``float`` parse.
    """
    raw = path.read_bytes()
    if not raw or b"\r" in raw or raw.startswith(b"\n") or b"\n\n" in raw:
        return None
    if not raw.endswith(b"\n"):
        raw += b"\n"
    sep_b = sep.encode()
    present = np.unique(np.frombuffer(raw, np.uint8)).tolist()
    if not set(present) <= _FAST_BYTES | set(sep_b):
        return None
    n_lines = raw.count(b"\n")
    arr = np.frombuffer(raw, np.uint8)
    is_sep = arr == sep_b[0]
    if len(sep_b) == 2:
        is_sep = is_sep[:-1] & (arr[1:] == sep_b[1])
    line_of_sep = np.searchsorted(np.flatnonzero(arr == 10), np.flatnonzero(is_sep))
    if not (np.bincount(line_of_sep, minlength=n_lines) == 3).all():
        return None
    tokens = np.array(raw.replace(sep_b, b"\n").split(b"\n")[:-1])
    if len(tokens) != 4 * n_lines:
        return None
    try:
        u, i, t = (tokens[k::4].astype(np.int64) for k in (0, 1, 3))
        r = tokens[2::4].astype(np.float64)
    except (ValueError, OverflowError):
        return None
    if not np.isfinite(r).all():
        return None
    return u, i, r, t, np.arange(1, n_lines + 1)


def _ratings(path: Path, sep: str, users: Indexer, items: Indexer, rating_range):
    """Parse ``user sep item sep rating sep timestamp`` lines; duplicates are errors, and
    so are ratings outside ``rating_range`` and a file without ratings."""
    fast = _ratings_fast(path, sep)
    if fast is not None:
        u, i, r, t, linenos = fast
        out = []
        for raw_ids, index in ((u, users), (i, items)):
            uniq, inverse = np.unique(raw_ids, return_inverse=True)
            codes = np.array([index(x) for x in uniq.tolist()], np.int64)
            out.append(codes[inverse] if len(uniq) else np.zeros(0, np.int64))
        parsed = out[0], out[1], r, t, linenos
    else:
        parsed = _ratings_slow(path, sep, users, items)
    if len(parsed[2]) == 0:
        raise empty_file(path, "ratings")
    check_range(path, parsed[2], parsed[4], rating_range, "rating", "rating_range")
    return parsed


def _ratings_slow(path: Path, sep: str, users: Indexer, items: Indexer):
    """Line-by-line parse; malformed lines raise naming file and line."""
    rows, cols, stamps, linenos = int_array(), int_array(), int_array(), int_array()
    values = []
    for lineno, line in read_lines(path, "latin-1"):
        linenos.append(lineno)
        u, i, r, t = split(path, lineno, line, sep, 4, "user, item, rating, timestamp")
        rows.append(users(to_int(path, lineno, u, "user id", line)))
        cols.append(items(to_int(path, lineno, i, "item id", line)))
        values.append(to_float(path, lineno, r, "rating", line))
        stamps.append(to_int(path, lineno, t, "timestamp", line))
    arrays = (rows, cols, values, stamps, linenos)
    return tuple(np.asarray(a, dtype=float if a is values else np.int64) for a in arrays)


def _assemble(path, users, items, rows, cols, ratings, stamps, linenos):
    user_ids, user_rank = users.finish()
    item_ids, item_rank = items.finish()
    rows, cols = user_rank[rows], item_rank[cols]
    shape = (len(user_ids), len(item_ids))
    key = rows * max(shape[1], 1) + cols
    uniq, counts = np.unique(key, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        first, second = np.flatnonzero(key == dup)[:2]
        raise ValueError(
            f"{path}, line {linenos[second]}: user {user_ids[rows[first]]} rated item "
            f"{item_ids[cols[first]]} again (first on line {linenos[first]}); MovieLens "
            "has one rating per (user, item) pair"
        )
    matrix = csr_from_entries(rows, cols, ratings, shape, np.float32)
    timestamps = csr_from_entries(rows, cols, stamps, shape, np.int64)
    return user_ids, user_rank, item_ids, item_rank, matrix, timestamps


def _read_users(path: Path, sep: str, fields, ints: dict, what: str, users: Indexer):
    """Parse a MovieLens user file (absent: no users): ``id`` then ``fields`` per line.

    Fields named in ``ints`` are integers (the value is their name in errors, and -1 the
    fill for users not listed), ``gender`` is upper-cased, the rest are kept as text.
    Returns ``(codes, {field: values}, {field: fill})`` for :func:`_finish`.
    """
    codes, cols, seen = [], {k: [] for k in fields}, {}
    if path.is_file():
        for lineno, line in read_lines(path, "latin-1"):
            uid, *values = split(path, lineno, line, sep, 1 + len(fields), what)
            raw = to_int(path, lineno, uid, "user id", line)
            _unique_line(seen, path, lineno, raw, "user", line)
            codes.append(users(raw))
            for k, v in zip(fields, values):
                if k in ints:
                    v = to_int(path, lineno, v, ints[k], line)
                cols[k].append(v.upper() if k == "gender" else v)
    return codes, cols, {k: -1 for k in ints}


def _finish(path, entries, user_part, item_part, meta) -> InteractionData:
    """:func:`_assemble` the ratings at ``path``, then place the attribute columns.

    ``user_part`` and ``item_part`` are ``(codes, {name: values}, {name: fill})``; a
    column missing from the fills is a string column filled with ``""``.
    """
    user_ids, u_rank, item_ids, i_rank, matrix, timestamps = _assemble(path, *entries)

    def attributes(n, rank, codes, columns, fills):
        at = rank[np.asarray(codes, np.int64)]
        return {k: column(n, at, v, fills.get(k, "")) for k, v in columns.items()}

    return InteractionData(
        matrix,
        user_ids,
        item_ids,
        attributes(len(user_ids), u_rank, *user_part),
        attributes(len(item_ids), i_rank, *item_part),
        timestamps,
        meta,
    )


def _unique_line(seen: dict, path: Path, lineno: int, raw, what: str, line: str) -> None:
    if raw in seen:
        raise malformed(
            path, lineno, f"{what} {raw} listed again (first on line {seen[raw]})", line
        )
    seen[raw] = lineno


def read_movielens_100k(
    path: str | os.PathLike, *, rating_range: tuple[float | None, float | None] = RATING_RANGE
) -> InteractionData:
    """Read MovieLens-100K (``ml-100k``): ``u.data``, and ``u.user`` / ``u.item`` if present.

    ``u.data`` lines are ``user \\t item \\t rating \\t timestamp``; ``u.user`` lines
    ``id|age|gender|occupation|zip``; ``u.item`` lines (latin-1) ``id|title|release
    date|video release date|IMDb URL|`` followed by 19 genre flags (names from
    ``u.genre`` when present). Users and items listed only in ``u.user`` / ``u.item``
    get empty rows / columns. A (user, item) pair rated twice is an error.

    Args:
        path: the ``ml-100k`` folder, or its ``u.data`` file.
        rating_range: allowed ``(low, high)`` ratings, inclusive (None: unbounded side);
            the default is the README's 1 to 5 stars.

    Returns:
        :class:`InteractionData` with ratings 1-5, timestamps, user attributes ``age``
        (int, -1 if unknown), ``gender`` ("M"/"F"), ``occupation``, ``zip`` and item
        attributes ``title``, ``release_date``, ``video_release_date``, ``imdb_url``,
        ``genres`` (bool, ``(n_items, 19)``; names in ``meta["genre_names"]``).

    Raises:
        FileNotFoundError: no ``u.data`` at ``path``.
        ValueError: a malformed line (the message names file and line: ids must be
            plain integers within int64, ratings finite numbers inside
            ``rating_range``), a duplicate, an empty ratings file, or a bad
            ``rating_range``.
    """
    rating_range = check_bounds(rating_range, "rating_range", "read_movielens_100k")
    folder = find_file(path, ("u.data",), "MovieLens-100K")
    users, items = Indexer(), Indexer()
    rows, cols, ratings, stamps, linenos = _ratings(
        folder / "u.data", "\t", users, items, rating_range
    )

    genre_names = list(GENRES_100K)
    if (folder / "u.genre").is_file():
        genre_path = folder / "u.genre"
        named = {}
        for lineno, line in read_lines(genre_path, "latin-1"):
            name, idx = split(genre_path, lineno, line, "|", 2, "name, index")
            named[to_int(genre_path, lineno, idx, "genre index", line)] = name
        genre_names = [named[k] for k in sorted(named)]

    user_part = _read_users(
        folder / "u.user",
        "|",
        ("age", "gender", "occupation", "zip"),
        {"age": "age"},
        "id, age, gender, occupation, zip",
        users,
    )

    i_codes, seen = [], {}
    i_cols = {k: [] for k in ("title", "release_date", "video_release_date", "imdb_url")}
    genres = []
    if (folder / "u.item").is_file():
        p = folder / "u.item"
        n_fields = 5 + len(genre_names)
        for lineno, line in read_lines(p, "latin-1"):
            f = split(p, lineno, line, "|", n_fields, "id, title, dates, URL, genre flags")
            raw = to_int(p, lineno, f[0], "item id", line)
            _unique_line(seen, p, lineno, raw, "item", line)
            if any(flag not in ("0", "1") for flag in f[5:]):
                raise malformed(p, lineno, "genre flags must be 0 or 1", line)
            i_codes.append(items(raw))
            for key, value in zip(i_cols, f[1:5]):
                i_cols[key].append(value)
            genres.append([flag == "1" for flag in f[5:]])

    i_cols["genres"] = np.asarray(genres, bool).reshape(-1, len(genre_names))
    return _finish(
        folder / "u.data",
        (users, items, rows, cols, ratings, stamps, linenos),
        user_part,
        (i_codes, i_cols, {"genres": False}),
        {"source": f"MovieLens-100K ({folder})", "genre_names": genre_names},
    )


def read_movielens_1m(
    path: str | os.PathLike, *, rating_range: tuple[float | None, float | None] = RATING_RANGE
) -> InteractionData:
    """Read MovieLens-1M (``ml-1m``): ``ratings.dat``, and ``users.dat`` / ``movies.dat``.

    All files are ``::``-separated and latin-1: ``UserID::MovieID::Rating::Timestamp``,
    ``UserID::Gender::Age::Occupation::Zip-code`` (age and occupation are the integer
    codes of the ML-1M README) and ``MovieID::Title::Genres`` with ``|``-separated
    genres. A (user, item) pair rated twice is an error.

    Args:
        path: the ``ml-1m`` folder, or its ``ratings.dat`` file.
        rating_range: allowed ``(low, high)`` ratings, inclusive (None: unbounded side);
            the default is the README's 1 to 5 stars.

    Returns:
        :class:`InteractionData` with ratings 1-5, timestamps, user attributes
        ``gender`` ("M"/"F"), ``age`` (code), ``occupation`` (code), ``zip`` and item
        attributes ``title`` and ``genres`` (bool ``(n_items, n_genres)``; names in
        ``meta["genre_names"]``: the 18 of the README, then any others in order of
        appearance).

    Raises:
        FileNotFoundError: no ``ratings.dat`` at ``path``.
        ValueError: a malformed line (the message names file and line: ids must be
            plain integers within int64, ratings finite numbers inside
            ``rating_range``), a duplicate, an empty ratings file, or a bad
            ``rating_range``.
    """
    rating_range = check_bounds(rating_range, "rating_range", "read_movielens_1m")
    folder = find_file(path, ("ratings.dat",), "MovieLens-1M")
    users, items = Indexer(), Indexer()
    rows, cols, ratings, stamps, linenos = _ratings(
        folder / "ratings.dat", "::", users, items, rating_range
    )

    user_part = _read_users(
        folder / "users.dat",
        "::",
        ("gender", "age", "occupation", "zip"),
        {"age": "age code", "occupation": "occupation code"},
        "UserID, Gender, Age, Occupation, Zip-code",
        users,
    )

    genre_names = list(GENRES_1M)
    genre_of = {g: k for k, g in enumerate(genre_names)}
    i_codes, titles, genre_lists, seen = [], [], [], {}
    if (folder / "movies.dat").is_file():
        p = folder / "movies.dat"
        for lineno, line in read_lines(p, "latin-1"):
            head, sep, genre_text = line.rpartition("::")
            mid, sep2, title = head.partition("::")
            if not sep or not sep2:
                raise malformed(
                    p, lineno, "expected 3 '::'-separated fields (MovieID, Title, Genres)", line
                )
            raw = to_int(p, lineno, mid, "movie id", line)
            _unique_line(seen, p, lineno, raw, "movie", line)
            names = [g for g in genre_text.split("|") if g]
            for g in names:
                if g not in genre_of:
                    genre_of[g] = len(genre_names)
                    genre_names.append(g)
            i_codes.append(items(raw))
            titles.append(title)
            genre_lists.append([genre_of[g] for g in names])

    flags = np.zeros((len(genre_lists), len(genre_names)), bool)
    for k, gl in enumerate(genre_lists):
        flags[k, gl] = True
    return _finish(
        folder / "ratings.dat",
        (users, items, rows, cols, ratings, stamps, linenos),
        user_part,
        (i_codes, {"title": titles, "genres": flags}, {"genres": False}),
        {"source": f"MovieLens-1M ({folder})", "genre_names": genre_names},
    )


def read_movielens(
    path: str | os.PathLike, *, rating_range: tuple[float | None, float | None] = RATING_RANGE
) -> InteractionData:
    """Read MovieLens-100K or -1M, whichever ``path`` holds (``u.data`` or ``ratings.dat``).

    Args:
        path: a folder, or its ``u.data`` / ``ratings.dat`` file.
        rating_range: allowed ``(low, high)`` ratings (default 1 to 5 stars).

    Returns:
        As :func:`read_movielens_100k` or :func:`read_movielens_1m`.

    Raises:
        FileNotFoundError: neither file is there.
        ValueError: a malformed line.
    """
    p = Path(path)
    folder = p.parent if p.is_file() else p
    if p.name == "u.data" or (p.is_dir() and (folder / "u.data").is_file()):
        return read_movielens_100k(path, rating_range=rating_range)
    if p.name == "ratings.dat" or (p.is_dir() and (folder / "ratings.dat").is_file()):
        return read_movielens_1m(path, rating_range=rating_range)
    raise FileNotFoundError(f"MovieLens: neither 'u.data' nor 'ratings.dat' found at {p}")
