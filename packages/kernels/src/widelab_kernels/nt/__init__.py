"""Neural Tangents 0.6.5's public API, translated onto widelab.

Change one import and NT programs run on widelab::

    import widelab_kernels.nt as nt
    from widelab_kernels.nt import stax, predict

Every ``stax`` name returns a widelab layer value that also unpacks to NT's
``(init_fn, apply_fn, kernel_fn)``. All mathematics lives in widelab's own modules
(the kernel rules, :mod:`widelab_kernels.inference`, :mod:`widelab_kernels.empirical`,
:mod:`widelab_kernels.linearize`); this package only translates names, argument
conventions and array layouts.
"""

from ..kernel import Kernel
from ..linearize import linearize, taylor_expand
from . import predict, stax
from .batching import batch
from .empirical import (
    NtkImplementation,
    empirical_kernel_fn,
    empirical_nngp_fn,
    empirical_ntk_fn,
    empirical_ntk_vp_fn,
)
from .monte_carlo import monte_carlo_kernel_fn

__all__ = [
    "Kernel",
    "NtkImplementation",
    "batch",
    "empirical_kernel_fn",
    "empirical_nngp_fn",
    "empirical_ntk_fn",
    "empirical_ntk_vp_fn",
    "linearize",
    "monte_carlo_kernel_fn",
    "predict",
    "stax",
    "taylor_expand",
]
