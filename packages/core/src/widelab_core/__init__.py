"""widelab-core: the layer algebra, device utilities, dataset readers and the
``widelab`` command shared by every widelab package."""

from . import cliargs, datasets, devices, layers, validate

__version__ = "0.1.0"
__all__ = ["__version__", "cliargs", "datasets", "devices", "layers", "validate"]
