"""widelab-core: the layer algebra, device utilities, dataset readers and the
``widelab`` command shared by every widelab package.

Submodules are imported on first use, so the ``widelab`` command starts without JAX.
``extend`` is the public API for writing new layers.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["__version__", "cliargs", "datasets", "devices", "extend", "layers", "validate"]

_SUBMODULES = ("cliargs", "datasets", "devices", "extend", "layers", "validate")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'widelab_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES))
