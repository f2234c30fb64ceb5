"""widelab-kernels: infinite-width NNGP and NTK kernels of widelab networks."""

from . import rules  # noqa: F401  (registers the built-in rules)
from .analytic import KernelFn, input_kernel, kernel_fn
from .kernel import Kernel
from .registry import KernelError, RuleContext, get_rule, register_rule

__version__ = "0.1.0"
__all__ = [
    "Kernel",
    "KernelError",
    "KernelFn",
    "RuleContext",
    "__version__",
    "get_rule",
    "input_kernel",
    "kernel_fn",
    "register_rule",
]
