"""Argument checking shared by every ``widelab`` subcommand.

Each package's command uses these argparse ``type=`` validators for its numeric flags
and :func:`check_output_file` / :func:`check_output_dir` for its output paths, before
any computation. A bad value becomes one line on stderr and exit code 2:

- a validator raises ``argparse.ArgumentTypeError`` at parse time, which the ``widelab``
  parser reports on one line;
- a check made later raises :class:`UsageError`, which the ``widelab`` dispatcher
  reports on one line.

Every validator carries a ``bad_examples`` tuple of strings it rejects, so a test can
try each flag of each subcommand with values that must fail.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> _ = p.add_argument("--factors", type=positive_int, default=32)
    >>> p.parse_args(["--factors", "8"]).factors
    8
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected an integer >= 1, got '0'
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "UsageError",
    "check_output_dir",
    "check_output_file",
    "finite_float",
    "float_list",
    "fraction",
    "int_list",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "probability",
    "strict_int",
]

_INT = re.compile(r"[+-]?[0-9]+")


class UsageError(ValueError):
    """A bad command-line value found after parsing: the ``widelab`` command prints the
    message on one line and exits with code 2."""


def strict_int(text: str) -> int:
    """Parse an integer written with ASCII digits and an optional sign only.

    Python's ``int`` also accepts ``"1_0"`` (as 10), surrounding blanks and non-ASCII
    digits; none of these is a plain integer in a data file or on a command line.

    Args:
        text: the text to parse.

    Returns:
        The integer.

    Raises:
        ValueError: ``text`` is not a plain integer.

    Example:
        >>> strict_int("-12")
        -12
    """
    if not isinstance(text, str) or not _INT.fullmatch(text):
        raise ValueError(f"{text!r} is not an integer (ASCII digits with an optional sign)")
    return int(text)


def _int_type(name: str, lo: int | None, bad: tuple[str, ...]) -> Callable[[str], int]:
    allowed = "an integer" if lo is None else f"an integer >= {lo}"

    def parse(text: str) -> int:
        try:
            value = strict_int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if lo is not None and value < lo:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = f"argparse type: {allowed} (plain ASCII digits; rejects e.g. {bad[0]!r})."
    parse.bad_examples = bad
    return parse


def _float_type(
    name: str, allowed: str, ok: Callable[[float], bool], bad: tuple[str, ...]
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if not math.isfinite(value) or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = f"argparse type: {allowed}."
    parse.bad_examples = bad
    return parse


positive_int = _int_type("positive_int", 1, ("0", "-1", "1.5", "1_0", "abc"))
nonnegative_int = _int_type("nonnegative_int", 0, ("-1", "1.5", "1_0", "abc"))
finite_float = _float_type("finite_float", "a finite number", lambda v: True, ("nan", "inf", "x"))
positive_float = _float_type(
    "positive_float", "a finite number > 0", lambda v: v > 0, ("0", "-1", "nan", "inf", "x")
)
nonnegative_float = _float_type(
    "nonnegative_float", "a finite number >= 0", lambda v: v >= 0, ("-1", "nan", "inf", "x")
)
probability = _float_type(
    "probability", "a number in [0, 1]", lambda v: 0 <= v <= 1, ("-0.1", "1.5", "nan", "x")
)
fraction = _float_type(
    "fraction", "a number strictly between 0 and 1", lambda v: 0 < v < 1, ("0", "1", "nan", "x")
)


def _list_type(name: str, item: Callable[[str], float]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        parts = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in parts):
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {item.__name__} values, got {text!r}"
            )
        out = []
        for t in parts:
            try:
                out.append(item(t))
            except argparse.ArgumentTypeError as err:
                raise argparse.ArgumentTypeError(f"in {text!r}: {err}") from None
        return out

    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = f"argparse type: comma-separated values, each {item.__name__}."
    parse.bad_examples = ("", "1,,2", *(f"1,{b}" for b in item.bad_examples))
    return parse


def int_list(item: Callable[[str], int] = positive_int) -> Callable[[str], list[int]]:
    """An argparse type for comma-separated integers, each checked by ``item``.

    Args:
        item: the validator of one value (default :func:`positive_int`).

    Returns:
        A parser returning a non-empty list.
    """
    return _list_type(f"int_list({item.__name__})", item)


def float_list(item: Callable[[str], float] = finite_float) -> Callable[[str], list[float]]:
    """An argparse type for comma-separated numbers, each checked by ``item``.

    Args:
        item: the validator of one value (default :func:`finite_float`).

    Returns:
        A parser returning a non-empty list.
    """
    return _list_type(f"float_list({item.__name__})", item)


def _writable_folder(folder: Path, flag: str, shown: Path) -> None:
    """Raise unless ``folder`` exists as a writable folder or could be created."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise UsageError(f"{flag} {str(shown)!r}: {str(probe)!r} is a broken link")
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(
            f"{flag} {str(shown)!r}: {str(probe)!r} is a file, so no folder can be made there"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {str(shown)!r}: folder {str(probe)!r} is not writable")


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Check, before computing, that a file can be written at ``path``.

    The path must not be a folder, and its nearest existing ancestor must be a writable
    folder (missing folders are created when the file is written).

    Args:
        path: the output file.
        flag: the option that named it (``"--out"``), for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        UsageError: the file cannot be written there.
    """
    p = Path(path)
    if not str(path):
        raise UsageError(f"{flag} is empty; expected a file path")
    if p.is_dir():
        raise UsageError(f"{flag} {str(p)!r} is a folder; expected a file path")
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(f"{flag} {str(p)!r} exists and is not writable")
    _writable_folder(p.parent, flag, p)
    return p


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Check, before computing, that ``path`` is or can become a writable folder.

    Args:
        path: the output folder.
        flag: the option that named it (``"--out"``), for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        UsageError: ``path`` (or an ancestor) is a file, or the folder is not writable.
    """
    p = Path(path)
    if not str(path):
        raise UsageError(f"{flag} is empty; expected a folder path")
    _writable_folder(p, flag, p)
    return p
