"""Run the docstring examples of every public module of every package."""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules():
    for src in sorted((ROOT / "packages").glob("*/src/widelab_*")):
        pkg = importlib.import_module(src.name)
        yield pkg.__name__
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            path = Path(importlib.util.find_spec(info.name).origin or "")
            if path.suffix == ".py" and ">>> " in path.read_text(encoding="utf-8"):
                yield info.name


@pytest.mark.parametrize("name", list(_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
