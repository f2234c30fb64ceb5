"""widelab-core: the layer algebra, device utilities, dataset readers and the
``widelab`` command shared by every widelab package."""

from . import datasets, devices, layers

__version__ = "0.1.0"
__all__ = ["__version__", "datasets", "devices", "layers"]
