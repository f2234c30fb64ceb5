"""Reader for the Last.fm-360K file format (O. Celma, "Music Recommendation and Discovery
in the Long Tail", Springer 2010; the ``lastfm-dataset-360K`` archive).

Nothing is downloaded: point the reader at an unpacked copy of the archive.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import scipy.sparse as sp

from ._base import (
    Indexer,
    InteractionData,
    check_bounds,
    check_range,
    column,
    empty_file,
    find_file,
    int_array,
    malformed,
    read_lines,
    split,
    to_int,
)

__all__ = ["read_lastfm_360k"]

PLAYS_FILE = "usersha1-artmbid-artname-plays.tsv"
PROFILE_FILE = "usersha1-profile.tsv"
#: Allowed play counts: non-negative integers (the archive's README), no upper bound
#: beyond int64.
PLAYS_RANGE = (0, None)


def read_lastfm_360k(
    path: str | os.PathLike,
    *,
    item_key: Literal["name", "mbid"] = "name",
    plays_range: tuple[float | None, float | None] = PLAYS_RANGE,
) -> InteractionData:
    """Read Last.fm-360K: play counts, and user profiles when present.

    ``usersha1-artmbid-artname-plays.tsv`` lines are ``user-sha1 \\t artist-mbid \\t
    artist-name \\t plays`` (UTF-8; the MBID is often empty); ``usersha1-profile.tsv``
    lines are ``user-sha1 \\t gender \\t age \\t country \\t signup date`` with any of
    the last four possibly empty. Artists are keyed by name (as in implicit's Last.fm
    loader) or, with ``item_key="mbid"``, by MBID where one is given and by name
    otherwise. Lines naming a (user, artist) pair more than once have their plays
    summed (pairs whose plays sum to zero are not stored); lines with neither artist name nor MBID are skipped and counted in
    ``meta["lines_without_artist"]``. Users listed only in the profile file get empty
    rows.

    Args:
        path: the ``lastfm-dataset-360K`` folder, or its plays ``.tsv`` file.
        item_key: ``"name"`` or ``"mbid"``, see above.
        plays_range: allowed ``(low, high)`` play counts per line, inclusive (None: no
            bound on that side); default: non-negative.

    Returns:
        :class:`InteractionData` with play counts (float32; exact below 2**24), user
        attributes ``gender`` ("M"/"F"/""), ``age`` (float, NaN when empty),
        ``country``, ``signup`` (the raw date text) and item attributes ``name`` and
        ``mbid`` (the first non-empty MBID seen for the artist, or "").

    Raises:
        FileNotFoundError: no plays file at ``path``.
        ValueError: ``item_key`` or ``plays_range`` bad; a plays file without a single
            line; a malformed line (wrong number of fields, empty user, plays that are
            not a plain integer within int64 or lie outside ``plays_range``,
            non-integer age, a user listed twice in the profile file): the message names
            file and line; plays of one (user, artist) pair summing past int64.
    """
    if item_key not in ("name", "mbid"):
        raise ValueError(f"read_lastfm_360k: item_key must be 'name' or 'mbid', got {item_key!r}")
    plays_range = lo, hi = check_bounds(plays_range, "plays_range", "read_lastfm_360k")
    folder = find_file(path, (PLAYS_FILE,), "Last.fm-360K")
    users, items = Indexer(), Indexer()
    rows, cols, plays = int_array(), int_array(), int_array()
    names: list[str] = []
    mbids: list[str] = []
    skipped = 0
    n_lines = 0
    p = folder / PLAYS_FILE
    for lineno, line in read_lines(p, "utf-8"):
        n_lines += 1
        user, mbid, name, count = split(
            p, lineno, line, "\t", 4, "user-sha1, artist-mbid, artist-name, plays"
        )
        if not user:
            raise malformed(p, lineno, "empty user id", line)
        n = to_int(p, lineno, count, "plays", line)
        if n < 0:
            raise malformed(p, lineno, f"negative plays {n}", line)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            check_range(p, np.array([n]), [lineno], plays_range, "plays", "plays_range")
        key = (mbid or name) if item_key == "mbid" else (name or mbid)
        if not key:
            skipped += 1
            continue
        rows.append(users(user))
        code = items(key)
        if code == len(names):
            names.append(name)
            mbids.append(mbid)
        elif mbid and not mbids[code]:
            mbids[code] = mbid
        if not names[code]:
            names[code] = name
        cols.append(code)
        plays.append(n)

    if n_lines == 0:
        raise empty_file(p, "play counts")

    u_codes, seen = [], {}
    u_cols = {k: [] for k in ("gender", "age", "country", "signup")}
    if (folder / PROFILE_FILE).is_file():
        q = folder / PROFILE_FILE
        for lineno, line in read_lines(q, "utf-8"):
            user, gender, age, country, signup = split(
                q, lineno, line, "\t", 5, "user-sha1, gender, age, country, signup"
            )
            if not user:
                raise malformed(q, lineno, "empty user id", line)
            if user in seen:
                raise malformed(q, lineno, f"user listed again (first on line {seen[user]})", line)
            seen[user] = lineno
            u_codes.append(users(user))
            u_cols["gender"].append(gender.upper())
            u_cols["age"].append(to_int(q, lineno, age, "age", line) if age else np.nan)
            u_cols["country"].append(country)
            u_cols["signup"].append(signup)

    user_ids, u_rank = users.finish()
    item_ids, i_rank = items.finish()
    shape = (len(user_ids), len(item_ids))
    r = u_rank[np.asarray(rows, np.int64)]
    c = i_rank[np.asarray(cols, np.int64)]
    # Sum duplicate (user, item) lines in int64 before the float32 cast.
    summed = sp.coo_matrix((np.asarray(plays, np.int64), (r, c)), shape=shape).tocsr()
    summed.sum_duplicates()
    if len(plays) and max(plays) > (2**63 - 1) // len(plays):  # int64 sums could wrap
        exact: dict = {}
        for key, n in zip(zip(r.tolist(), c.tolist()), plays):
            exact[key] = exact.get(key, 0) + n
        overflow = max(exact.values()) > 2**63 - 1
    else:
        overflow = False
    if overflow:
        raise ValueError(
            f"{p}: the plays of one (user, artist) pair sum past 2**63 - 1 (int64 overflow)"
        )
    duplicates = len(plays) - summed.nnz
    summed.eliminate_zeros()
    matrix = sp.csr_matrix(
        (summed.data.astype(np.float32), summed.indices, summed.indptr), shape=shape
    )
    matrix.sort_indices()

    nu, ni = shape
    u_at = u_rank[np.asarray(u_codes, np.int64)]
    order = np.argsort(i_rank)  # code of each column
    item_attributes = {
        "name": np.asarray(names, dtype=str)[order] if names else np.array([], str),
        "mbid": np.asarray(mbids, dtype=str)[order] if mbids else np.array([], str),
    }
    user_attributes = {
        "gender": column(nu, u_at, u_cols["gender"], ""),
        "age": column(nu, u_at, np.asarray(u_cols["age"], float), np.nan),
        "country": column(nu, u_at, u_cols["country"], ""),
        "signup": column(nu, u_at, u_cols["signup"], ""),
    }
    meta = {
        "source": f"Last.fm-360K ({folder})",
        "item_key": item_key,
        "lines_without_artist": skipped,
        "duplicate_lines_summed": int(duplicates),
    }
    return InteractionData(matrix, user_ids, item_ids, user_attributes, item_attributes, None, meta)
