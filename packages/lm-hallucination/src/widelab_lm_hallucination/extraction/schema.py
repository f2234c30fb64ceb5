"""Extraction schemas: the variables a person wants out of each document.

A schema is a list of variables. Each variable has a type (``category``, ``number``,
``date`` or ``text``), and what the labelling functions use to find it: allowed
categories (for ``category``), keywords, an optional regular expression, questions
shown to the validator, and optionally the knowledge-graph relation a language model
answers for it. Schemas are read from TOML or JSON::

    [[variables]]
    name = "birthplace"
    type = "category"
    categories = ["Paris", "Lyon"]
    keywords = ["born in", "native of"]
    questions = ["Where was the person born?"]
    relation = "born in"
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

VARIABLE_TYPES = ("category", "number", "date", "text")


class SchemaError(ValueError):
    """A schema file or value is malformed; the message names the file and field."""


@dataclasses.dataclass(frozen=True)
class Variable:
    """One variable to extract.

    Attributes:
        name: identifier (letters, digits, ``_`` and ``-``).
        type: ``category``, ``number``, ``date`` or ``text``.
        categories: allowed values of a ``category`` variable.
        keywords: words or phrases that signal the variable in a sentence.
        pattern: optional regular expression; its first group (or the whole match) is
            a candidate value.
        questions: questions shown to the person validating this variable.
        relation: knowledge-graph relation a language model answers for it, if any.
    """

    name: str
    type: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    questions: tuple[str, ...] = ()
    relation: str | None = None

    def __post_init__(self):
        where = f"variable {self.name!r}"
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise SchemaError(f"variable name {self.name!r} must be letters, digits, '_' or '-'")
        if self.type not in VARIABLE_TYPES:
            raise SchemaError(f"{where}: type {self.type!r} is not one of {VARIABLE_TYPES}")
        if self.type == "category" and not self.categories:
            raise SchemaError(f"{where}: a category variable needs a non-empty 'categories'")
        if self.type != "category" and self.categories:
            raise SchemaError(f"{where}: 'categories' is only allowed for type 'category'")
        for field in ("categories", "keywords", "questions"):
            vals = getattr(self, field)
            if any(not isinstance(v, str) or not v.strip() for v in vals):
                raise SchemaError(f"{where}: '{field}' must be a list of non-empty strings")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise SchemaError(f"{where}: 'pattern' is not a valid regex: {e}") from None

    def normalise(self, value: str) -> str | None:
        """The canonical form of ``value`` for this variable, or None if it is not one.

        Categories match case-insensitively and return the schema's spelling; numbers
        are written without thousands separators; dates become ISO ``YYYY-MM-DD``.
        """
        from .text import parse_date, parse_number

        value = value.strip()
        if not value:
            return None
        if self.type == "category":
            low = value.casefold()
            return next((c for c in self.categories if c.casefold() == low), None)
        if self.type == "number":
            return parse_number(value)
        if self.type == "date":
            return parse_date(value)
        return value

    def to_dict(self) -> dict:
        """A JSON-ready dict (the form :func:`schema_from_dict` reads)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclasses.dataclass(frozen=True)
class Schema:
    """An ordered set of variables with distinct names."""

    variables: tuple[Variable, ...]

    def __post_init__(self):
        if not self.variables:
            raise SchemaError("a schema needs at least one variable")
        names = [v.name for v in self.variables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SchemaError(f"variable names must be distinct; repeated: {dup}")

    def __getitem__(self, name: str) -> Variable:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"no variable {name!r} in the schema; it has {self.names()}")

    def names(self) -> list[str]:
        """Variable names in schema order."""
        return [v.name for v in self.variables]

    def to_json(self) -> str:
        """The schema as JSON (round-trips through :func:`read_schema`)."""
        return json.dumps({"variables": [v.to_dict() for v in self.variables]}, indent=2)


_FIELDS = {f.name for f in dataclasses.fields(Variable)}


def schema_from_dict(data: object, source: str = "<schema>") -> Schema:
    """Build a :class:`Schema` from parsed TOML/JSON.

    Args:
        data: a mapping with a ``variables`` list of variable tables.
        source: name used in error messages (usually the file path).

    Raises:
        SchemaError: naming ``source`` and the offending field.
    """
    if not isinstance(data, dict) or not isinstance(data.get("variables"), list):
        raise SchemaError(f"{source}: the schema needs a 'variables' list of tables")
    out = []
    for i, item in enumerate(data["variables"]):
        where = f"{source}: variables[{i}]"
        if not isinstance(item, dict):
            raise SchemaError(f"{where} must be a table, got {type(item).__name__}")
        unknown = sorted(set(item) - _FIELDS)
        if unknown:
            raise SchemaError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
        for req in ("name", "type"):
            if req not in item:
                raise SchemaError(f"{where}: missing field '{req}'")
        kw = dict(item)
        for field in ("categories", "keywords", "questions"):
            if field in kw:
                if not isinstance(kw[field], list):
                    raise SchemaError(f"{where}: '{field}' must be a list of strings")
                kw[field] = tuple(kw[field])
        for field in ("name", "type", "pattern", "relation"):
            if field in kw and kw[field] is not None and not isinstance(kw[field], str):
                raise SchemaError(f"{where}: '{field}' must be a string")
        try:
            out.append(Variable(**kw))
        except SchemaError as e:
            raise SchemaError(f"{where}: {e}") from None
    try:
        return Schema(tuple(out))
    except SchemaError as e:
        raise SchemaError(f"{source}: {e}") from None


def read_schema(path: str | Path) -> Schema:
    """Read a schema from a ``.toml`` or ``.json`` file.

    Raises:
        SchemaError: unreadable or malformed file, naming the file and field.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SchemaError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    elif path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SchemaError(f"{path}: invalid TOML: {e}") from None
    else:
        raise SchemaError(f"{path}: a schema file must end in .toml or .json")
    return schema_from_dict(data, str(path))


def schema_of(variables: Sequence[Variable]) -> Schema:
    """A :class:`Schema` of ``variables`` (a convenience for code-built schemas)."""
    return Schema(tuple(variables))
