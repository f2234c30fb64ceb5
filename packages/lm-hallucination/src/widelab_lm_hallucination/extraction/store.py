"""The extraction store: documents, candidates and validations in one SQLite file.

The file is safe to share between the extraction pipeline and the validation UI at
the same time: it runs in write-ahead-log mode with a busy timeout, every write is
one short transaction, and candidates are unique on ``(document, variable, value,
span, function)`` so a resumed run never duplicates them.

An *item* is one ``(document, variable)`` pair. Validations are stored per decision:

* ``accept`` -- the shown candidate is right (the item is resolved with its value);
* ``reject`` -- the shown candidate is wrong (the item stays open);
* ``other`` -- another candidate of the item is right (resolved with that value);
* ``value`` -- the person typed the value (resolved);
* ``none`` -- the document does not state the variable (resolved, no value).

The latest resolving decision of an item is its validated value.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .documents import Document
from .functions import Candidate
from .schema import Schema, schema_from_dict

SCHEMA_VERSION = 1
DECISIONS = ("accept", "reject", "other", "value", "none")
RESOLVING = ("accept", "other", "value", "none")

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id),
    variable TEXT NOT NULL,
    value TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    sentence TEXT NOT NULL,
    context_start INTEGER NOT NULL,
    context_end INTEGER NOT NULL,
    confidence REAL NOT NULL,
    function TEXT NOT NULL,
    UNIQUE (doc_id, variable, value, start, "end", function)
);
CREATE INDEX IF NOT EXISTS candidates_item ON candidates (doc_id, variable);
CREATE TABLE IF NOT EXISTS processed (
    doc_id TEXT NOT NULL,
    function TEXT NOT NULL,
    PRIMARY KEY (doc_id, function)
);
CREATE TABLE IF NOT EXISTS validations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id),
    variable TEXT NOT NULL,
    candidate_id INTEGER REFERENCES candidates(id),
    decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'other', 'value', 'none')),
    value TEXT,
    who TEXT NOT NULL,
    at REAL NOT NULL,
    seconds REAL NOT NULL CHECK (seconds >= 0)
);
CREATE INDEX IF NOT EXISTS validations_item ON validations (doc_id, variable);
"""


class StoreError(ValueError):
    """A store that cannot be used (wrong version, another schema, bad decision)."""


@dataclasses.dataclass(frozen=True)
class StoredCandidate:
    """A candidate as stored, with its row id."""

    id: int
    candidate: Candidate


@dataclasses.dataclass(frozen=True)
class Validation:
    """One recorded decision."""

    id: int
    doc_id: str
    variable: str
    candidate_id: int | None
    decision: str
    value: str | None
    who: str
    at: float
    seconds: float


class Store:
    """An extraction database (see the module docstring).

    Args:
        path: the SQLite file (created if missing); ``":memory:"`` for a private store.
        schema: the extraction schema; stored on first use, and a different schema on
            an existing store is an error (open without ``schema`` to use the stored one).

    Raises:
        StoreError: the file has another schema version or another extraction schema.
    """

    def __init__(self, path: str | Path, schema: Schema | None = None):
        self.path = str(path)
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise StoreError(f"{self.path}: folder {parent} does not exist")
        self._conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=30000")
            with self._conn:
                self._conn.executescript(_DDL)
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise StoreError(f"{self.path}: not an extraction database ({e})") from None
        version = self._meta("schema_version")
        if version is None:
            self._set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store version {version}; this widelab reads version {SCHEMA_VERSION}"
            )
        stored = self._meta("extraction_schema")
        if schema is not None:
            if stored is None:
                self._set_meta("extraction_schema", schema.to_json())
            elif json.loads(stored) != json.loads(schema.to_json()):
                raise StoreError(
                    f"{self.path} was filled with another extraction schema; use a new "
                    "database file or the schema it was made with"
                )
            self.schema = schema
        elif stored is not None:
            self.schema = schema_from_dict(json.loads(stored), self.path)
        else:
            raise StoreError(f"{self.path}: empty store; give the extraction schema")

    # -- plumbing ---------------------------------------------------------------
    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken immediately, so writers queue instead of failing)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.rollback()
            raise
        else:
            self._conn.commit()

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- documents and candidates -----------------------------------------------
    def add_document_results(
        self, doc: Document, function: str, candidates: Iterable[Candidate]
    ) -> int:
        """Store a document, one function's candidates for it, and mark it processed.

        All in one transaction: an interrupted run leaves either all of it or none.

        Returns:
            The number of new candidates (duplicates are ignored).
        """
        cands = list(candidates)
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO documents (id, text, metadata) VALUES (?, ?, ?)",
                (doc.id, doc.text, json.dumps(doc.metadata, ensure_ascii=False)),
            )
            before = c.total_changes
            c.executemany(
                'INSERT OR IGNORE INTO candidates (doc_id, variable, value, start, "end", '
                "sentence, context_start, context_end, confidence, function) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        x.doc_id,
                        x.variable,
                        x.value,
                        x.start,
                        x.end,
                        x.sentence,
                        x.context_start,
                        x.context_end,
                        x.confidence,
                        x.function,
                    )
                    for x in cands
                ],
            )
            added = c.total_changes - before
            c.execute(
                "INSERT OR IGNORE INTO processed (doc_id, function) VALUES (?, ?)",
                (doc.id, function),
            )
        return added

    def is_processed(self, doc_id: str, function: str) -> bool:
        """Whether ``function`` already ran over document ``doc_id``."""
        row = self._conn.execute(
            "SELECT 1 FROM processed WHERE doc_id = ? AND function = ?", (doc_id, function)
        ).fetchone()
        return row is not None

    def document(self, doc_id: str) -> Document:
        """A stored document.

        Raises:
            KeyError: no such document.
        """
        row = self._conn.execute(
            "SELECT id, text, metadata FROM documents WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no document {doc_id!r} in {self.path}")
        return Document(row["id"], row["text"], json.loads(row["metadata"]))

    def document_ids(self) -> list[str]:
        """Stored document ids in insertion order."""
        return [r[0] for r in self._conn.execute("SELECT id FROM documents ORDER BY seq")]

    def candidates(self, doc_id: str | None = None, variable: str | None = None):
        """Stored candidates (optionally of one document / variable), best first."""
        q = "SELECT * FROM candidates WHERE 1=1"
        args: list = []
        if doc_id is not None:
            q += " AND doc_id = ?"
            args.append(doc_id)
        if variable is not None:
            q += " AND variable = ?"
            args.append(variable)
        q += " ORDER BY doc_id, variable, confidence DESC, id"
        return [_row_candidate(r) for r in self._conn.execute(q, args)]

    def candidate(self, candidate_id: int) -> StoredCandidate:
        """One stored candidate by id.

        Raises:
            KeyError: no such candidate.
        """
        row = self._conn.execute(
            "SELECT * FROM candidates WHERE id = ?", (int(candidate_id),)
        ).fetchone()
        if row is None:
            raise KeyError(f"no candidate with id {candidate_id}")
        return _row_candidate(row)

    # -- validations ------------------------------------------------------------
    def validate(
        self,
        doc_id: str,
        variable: str,
        decision: str,
        *,
        candidate_id: int | None = None,
        value: str | None = None,
        who: str = "validator",
        seconds: float = 0.0,
        at: float | None = None,
    ) -> Validation:
        """Record one decision on the item ``(doc_id, variable)``.

        Args:
            doc_id: the document.
            variable: the variable's name.
            decision: one of ``accept``, ``reject``, ``other``, ``value``, ``none``.
            candidate_id: the candidate decided on (required for accept/reject/other).
            value: the typed value (required for ``value``; normalised to the variable's
                canonical form).
            who: the validator's name.
            seconds: time spent on the decision.
            at: Unix time of the decision (default: now).

        Raises:
            StoreError: unknown decision, document, variable or candidate, a candidate of
                another item, a missing or malformed value, negative seconds.
        """
        if decision not in DECISIONS:
            raise StoreError(f"decision must be one of {DECISIONS}, got {decision!r}")
        try:
            var = self.schema[variable]
        except KeyError as e:
            raise StoreError(str(e.args[0])) from None
        if not (isinstance(seconds, (int, float)) and 0 <= seconds < float("inf")):
            raise StoreError(f"seconds must be a finite number >= 0, got {seconds!r}")
        if not isinstance(who, str) or not who.strip():
            raise StoreError("who must be a non-empty name")
        if not self._has_doc(doc_id):
            raise StoreError(f"no document {doc_id!r} in the store")
        stored_value: str | None = None
        if decision in ("accept", "reject", "other"):
            if candidate_id is None:
                raise StoreError(f"decision {decision!r} needs a candidate_id")
            try:
                cand = self.candidate(candidate_id).candidate
            except (KeyError, ValueError, TypeError):
                raise StoreError(f"no candidate with id {candidate_id!r}") from None
            if (cand.doc_id, cand.variable) != (doc_id, variable):
                raise StoreError(
                    f"candidate {candidate_id} belongs to ({cand.doc_id!r}, "
                    f"{cand.variable!r}), not ({doc_id!r}, {variable!r})"
                )
            stored_value = cand.value
        elif decision == "value":
            canon = var.normalise(value) if isinstance(value, str) else None
            if canon is None:
                allowed = f"one of {list(var.categories)}" if var.type == "category" else var.type
                raise StoreError(f"value {value!r} is not a valid {variable} ({allowed})")
            stored_value = canon
        at = time.time() if at is None else float(at)
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO validations (doc_id, variable, candidate_id, decision, value, who, "
                "at, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (doc_id, variable, candidate_id, decision, stored_value, who, at, float(seconds)),
            )
            vid = cur.lastrowid
        return Validation(
            vid, doc_id, variable, candidate_id, decision, stored_value, who, at, seconds
        )

    def _has_doc(self, doc_id: str) -> bool:
        return (
            self._conn.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,)).fetchone()
            is not None
        )

    def validations(self) -> list[Validation]:
        """Every recorded decision, oldest first."""
        return [
            Validation(
                r["id"],
                r["doc_id"],
                r["variable"],
                r["candidate_id"],
                r["decision"],
                r["value"],
                r["who"],
                r["at"],
                r["seconds"],
            )
            for r in self._conn.execute("SELECT * FROM validations ORDER BY id")
        ]

    def resolved(self) -> dict[tuple[str, str], Validation]:
        """The latest resolving decision of each resolved item."""
        out: dict[tuple[str, str], Validation] = {}
        for v in self.validations():
            if v.decision in RESOLVING:
                out[(v.doc_id, v.variable)] = v
        return out

    def rejected(self) -> set[int]:
        """Ids of candidates that a person rejected."""
        return {
            v.candidate_id
            for v in self.validations()
            if v.decision == "reject" and v.candidate_id is not None
        }

    def items(self) -> list[tuple[str, str]]:
        """Every ``(document, variable)`` item, documents in insertion order."""
        names = self.schema.names()
        return [(d, n) for d in self.document_ids() for n in names]

    def effort(self) -> dict:
        """Validation effort so far: decisions, resolved items and seconds spent."""
        vals = self.validations()
        return {
            "decisions": len(vals),
            "resolved_items": len(self.resolved()),
            "items": len(self.items()),
            "seconds": float(sum(v.seconds for v in vals)),
        }


def _row_candidate(r: sqlite3.Row) -> StoredCandidate:
    return StoredCandidate(
        r["id"],
        Candidate(
            r["doc_id"],
            r["variable"],
            r["value"],
            r["start"],
            r["end"],
            r["sentence"],
            r["context_start"],
            r["context_end"],
            r["confidence"],
            r["function"],
        ),
    )
