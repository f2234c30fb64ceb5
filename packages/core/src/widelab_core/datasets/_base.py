"""The :class:`InteractionData` container and the pieces every reader shares."""

from __future__ import annotations

import dataclasses
import os
import re
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["InteractionData"]


@dataclasses.dataclass(eq=False)
class InteractionData:
    """A user x item interaction matrix with its id maps and attribute tables.

    Rows are users and columns items, both in sorted order of their raw ids. Attribute
    tables are plain dicts of NumPy arrays whose first axis runs over rows (users) or
    columns (items); missing values are ``""`` for strings, ``-1`` for integer codes,
    ``NaN`` for floats and ``False`` for flags.

    Attributes:
        matrix: ``scipy.sparse.csr_matrix`` of shape ``(n_users, n_items)``, float32:
            ratings (MovieLens) or play counts (LastFM); absent pairs are not stored.
        user_ids: raw id of each row.
        item_ids: raw id of each column.
        user_attributes: per-user columns, e.g. ``"gender"`` (``"M"``, ``"F"``, ``""``).
        item_attributes: per-item columns, e.g. ``"title"`` or ``"genres"`` (bool 2-D).
        timestamps: int64 CSR matrix with the same sparsity pattern as ``matrix``
            (seconds since the epoch), or ``None``.
        meta: free-form facts: ``"source"``, ``"genre_names"``, counts of skipped lines.
        user_index: raw user id -> row (built from ``user_ids``).
        item_index: raw item id -> column (built from ``item_ids``).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> m = sp.csr_matrix(np.array([[5.0, 0.0], [2.0, 4.0]], np.float32))
        >>> d = InteractionData(m, np.array([10, 20]), np.array(["a", "b"]))
        >>> d.user_index[20], d.binarize(4).matrix.toarray().tolist()
        (1, [[1.0, 0.0], [0.0, 1.0]])
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_attributes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    item_attributes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    timestamps: sp.csr_matrix | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    user_index: dict = dataclasses.field(init=False, repr=False)
    item_index: dict = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        if not sp.issparse(self.matrix) or self.matrix.format != "csr":
            raise ValueError(f"InteractionData: matrix must be CSR, got {type(self.matrix)}")
        shape = (len(self.user_ids), len(self.item_ids))
        if self.matrix.shape != shape:
            raise ValueError(
                f"InteractionData: matrix has shape {self.matrix.shape} but there are "
                f"{shape[0]} user ids and {shape[1]} item ids"
            )
        for kind, table, n in [
            ("user", self.user_attributes, shape[0]),
            ("item", self.item_attributes, shape[1]),
        ]:
            for name, column in table.items():
                if len(column) != n:
                    raise ValueError(
                        f"InteractionData: {kind} attribute {name!r} has {len(column)} "
                        f"entries, expected {n}"
                    )
        if self.timestamps is not None and self.timestamps.shape != shape:
            raise ValueError(f"InteractionData: timestamps have shape {self.timestamps.shape}")
        self.user_index = _index(self.user_ids, "user")
        self.item_index = _index(self.item_ids, "item")

    @property
    def n_users(self) -> int:
        """Number of rows."""
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        """Number of columns."""
        return self.matrix.shape[1]

    @property
    def n_interactions(self) -> int:
        """Number of stored (user, item) entries."""
        return int(self.matrix.nnz)

    def binarize(self, threshold: float) -> InteractionData:
        """Implicit feedback: entries ``>= threshold`` become 1.0, the others are dropped.

        Args:
            threshold: smallest rating (or play count) that counts as a positive.

        Returns:
            A new :class:`InteractionData` with the same ids and attributes (and the
            timestamps of the kept entries).
        """
        keep = self.matrix.data >= threshold
        ones = np.ones(int(keep.sum()), np.float32)
        matrix = _filter(self.matrix, keep, ones)
        stamps = None
        if self.timestamps is not None:
            stamps = _filter(self.timestamps, keep, self.timestamps.data[keep])
        meta = dict(self.meta, binarized_at=threshold)
        return InteractionData(
            matrix,
            self.user_ids,
            self.item_ids,
            dict(self.user_attributes),
            dict(self.item_attributes),
            stamps,
            meta,
        )


def _index(ids: np.ndarray, kind: str) -> dict:
    index = {raw: k for k, raw in enumerate(np.asarray(ids).tolist())}
    if len(index) != len(ids):
        raise ValueError(f"InteractionData: {kind} ids are not unique")
    return index


def _filter(m: sp.csr_matrix, keep: np.ndarray, data: np.ndarray) -> sp.csr_matrix:
    """The entries of CSR ``m`` where ``keep`` holds, with new ``data``."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[keep]
    indptr = np.zeros(m.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=m.shape[0]), out=indptr[1:])
    return sp.csr_matrix((data, m.indices[keep], indptr), shape=m.shape)


def csr_from_entries(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int], dtype
) -> sp.csr_matrix:
    """CSR with sorted column indices from entries that are unique per (row, col)."""
    order = np.lexsort((cols, rows))
    indptr = np.zeros(shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return sp.csr_matrix(
        (np.asarray(values)[order].astype(dtype), np.asarray(cols)[order], indptr), shape=shape
    )


# ----------------------------------------------------------------------------- files


def malformed(path: Path, lineno: int, what: str, line: str | None = None) -> ValueError:
    """A ValueError naming the file and the (1-based) line."""
    shown = "" if line is None else f": {line[:200]!r}"
    return ValueError(f"{path}, line {lineno}: {what}{shown}")


def read_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` without the line break, skipping blank lines.

    Lines are decoded one at a time, so an undecodable byte is reported with its line.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise malformed(path, lineno, f"not valid {encoding} text ({err.reason})") from None
            if line.strip():
                yield lineno, line


def split(path: Path, lineno: int, line: str, sep: str, n: int, names: str) -> list[str]:
    """Split a line into exactly ``n`` fields or raise naming file and line."""
    fields = line.split(sep)
    if len(fields) != n:
        raise malformed(
            path,
            lineno,
            f"expected {n} {sep!r}-separated fields ({names}), got {len(fields)}",
            line,
        )
    return fields


_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
INT64_MAX = int(np.iinfo(np.int64).max)
INT64_MIN = int(np.iinfo(np.int64).min)


def to_int(path: Path, lineno: int, text: str, field: str, line: str) -> int:
    """Parse a plain integer field (ASCII digits, optional sign, within int64) or raise
    naming file, line and field. ``"1_0"`` is not 10 here, unlike Python's ``int``."""
    if not _INT.fullmatch(text):
        raise malformed(path, lineno, f"{field} {text!r} is not an integer", line)
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise malformed(
            path, lineno, f"{field} {text!r} is out of range (at most 2**63 - 1 in size)", line
        )
    return value


def to_float(path: Path, lineno: int, text: str, field: str, line: str) -> float:
    """Parse a finite decimal number field or raise naming file, line and field."""
    if not _FLOAT.fullmatch(text):
        lowered = text.strip().lower().lstrip("+-")
        if lowered in ("nan", "inf", "infinity"):
            raise malformed(path, lineno, f"{field} {text!r} is not finite", line)
        raise malformed(path, lineno, f"{field} {text!r} is not a number", line)
    value = float(text)
    if not np.isfinite(value):
        raise malformed(path, lineno, f"{field} {text!r} is not finite", line)
    return value


def check_range(
    path: Path,
    values: np.ndarray,
    linenos,
    bounds: tuple[float | None, float | None],
    field: str,
    arg: str,
) -> None:
    """Raise naming file and line of the first value outside ``[lo, hi]`` (None: open)."""
    lo, hi = bounds
    values = np.asarray(values)
    bad = np.zeros(values.shape, bool)
    if lo is not None:
        bad |= values < lo
    if hi is not None:
        bad |= values > hi
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        allowed = (
            f"from {lo:g} to {hi:g}"
            if lo is not None and hi is not None
            else (f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
        )
        value = values[k].item()
        raise malformed(
            path,
            int(linenos[k]),
            f"{field} {value:g} is outside the allowed range "
            f"({allowed}; the reader's {arg} argument sets it)",
        )


def check_bounds(bounds, name: str, reader: str) -> tuple[float | None, float | None]:
    """Validate a ``(low, high)`` range argument (either may be None)."""
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise ValueError(f"{reader}: {name} must be a (low, high) pair, got {bounds!r}") from None
    for v in (lo, hi):
        if v is not None and (isinstance(v, bool) or not np.isfinite(v)):
            raise ValueError(
                f"{reader}: {name} bounds must be finite numbers or None, got {bounds!r}"
            )
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{reader}: {name} low end exceeds high end, got {bounds!r}")
    return lo, hi


def empty_file(path: Path, what: str) -> ValueError:
    """The error for a data file without a single record."""
    return ValueError(f"{path}: the file holds no {what} (it is empty or blank)")


def find_file(path: str | os.PathLike, names: tuple[str, ...], dataset: str) -> Path:
    """The folder holding ``names[0]``: ``path`` itself, or its parent when a file."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if path.is_file() and path.name != names[0]:
        raise FileNotFoundError(f"{dataset}: expected a folder or {names[0]!r}, got {path}")
    if not (folder / names[0]).is_file():
        raise FileNotFoundError(f"{dataset}: no {names[0]!r} in {folder}")
    return folder


class Indexer:
    """Codes raw ids in order of first appearance; :meth:`finish` sorts them."""

    def __init__(self):
        self.codes: dict = {}

    def __call__(self, raw) -> int:
        code = self.codes.get(raw)
        if code is None:
            code = self.codes[raw] = len(self.codes)
        return code

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(sorted raw ids, rank)``: code ``c`` becomes row ``rank[c]``."""
        raw = list(self.codes)
        ids = np.array(raw) if raw else np.array([], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        rank = np.empty(len(raw), np.int64)
        rank[order] = np.arange(len(raw))
        return ids[order], rank


def int_array() -> array:
    """A growable int64 buffer."""
    return array("q")


def column(n: int, codes, values, fill) -> np.ndarray:
    """An attribute column of length ``n`` with ``values`` at ``codes``, ``fill`` elsewhere."""
    fill_dtype = np.asarray(fill).dtype
    values = np.asarray(values)
    if values.size == 0:
        values = values.astype(fill_dtype)
    out = np.full((n, *values.shape[1:]), fill, np.result_type(values.dtype, fill_dtype))
    if len(codes):
        out[np.asarray(codes, np.int64)] = values
    return out
