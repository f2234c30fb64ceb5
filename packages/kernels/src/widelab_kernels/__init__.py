"""widelab-kernels: Infinite-width NNGP and NTK kernels."""

__version__ = "0.1.0"
__all__ = ["__version__"]
