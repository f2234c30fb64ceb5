"""Document collections: JSON-lines files, plain-text files and folders, read lazily."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path


class DocumentError(ValueError):
    """A malformed document file; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class Document:
    """One document.

    Attributes:
        id: unique identifier within the collection.
        text: the full text (offsets of extractions index into it).
        metadata: free-form JSON-ready fields (e.g. ``subject`` for KG-built documents).
    """

    id: str
    text: str
    metadata: dict = dataclasses.field(default_factory=dict)


def iter_documents(path: str | Path) -> Iterator[Document]:
    """Yield the documents of a collection one at a time (any size that fits on disk).

    Accepted forms:

    * ``.jsonl`` / ``.ndjson``: one JSON object per line with ``id`` (string or integer),
      ``text`` (string) and optional ``metadata`` (object); blank lines are skipped.
    * ``.txt`` file: one document whose id is the file name without its extension.
    * a folder: every ``*.txt`` inside (sorted by name), one document each.

    Raises:
        DocumentError: malformed lines, duplicate ids, non-UTF-8 text, naming file and line.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such document file or folder")
    seen: set[str] = set()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt")
        if not files:
            raise DocumentError(f"{path}: the folder holds no .txt documents")
        for f in files:
            yield _unique(_text_file(f), seen, f, None)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for doc, line in _jsonl(path):
            yield _unique(doc, seen, path, line)
    elif path.suffix.lower() == ".txt":
        yield _text_file(path)
    else:
        raise DocumentError(f"{path}: documents must be a .jsonl file, a .txt file or a folder")


def _unique(doc: Document, seen: set[str], path: Path, line: int | None) -> Document:
    if doc.id in seen:
        where = f"{path}:{line}" if line else str(path)
        raise DocumentError(f"{where}: duplicate document id {doc.id!r}")
    seen.add(doc.id)
    return doc


def _text_file(path: Path) -> Document:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DocumentError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return Document(path.stem, text, {"file": path.name})


def _jsonl(path: Path) -> Iterator[tuple[Document, int]]:
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            where = f"{path}:{i}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DocumentError(f"{where}: not UTF-8 text (byte {e.start})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DocumentError(f"{where}: invalid JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise DocumentError(f"{where}: each line must be a JSON object")
            doc_id = obj.get("id")
            if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or doc_id == "":
                raise DocumentError(f"{where}: field 'id' must be a non-empty string or integer")
            text = obj.get("text")
            if not isinstance(text, str):
                raise DocumentError(f"{where}: field 'text' must be a string")
            meta = obj.get("metadata", {})
            if not isinstance(meta, dict):
                raise DocumentError(f"{where}: field 'metadata' must be an object")
            yield Document(str(doc_id), text, meta), i


def write_jsonl(path: str | Path, docs: Iterable[Document]) -> None:
    """Write documents as JSON lines (through a temporary file and a rename)."""
    from widelab_core.command import atomic_write

    lines = (
        json.dumps({"id": d.id, "text": d.text, "metadata": d.metadata}, ensure_ascii=False)
        for d in docs
    )
    atomic_write(Path(path), "".join(line + "\n" for line in lines))
