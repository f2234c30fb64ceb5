"""widelab-kernels: infinite-width NNGP and NTK kernels of widelab networks."""

from . import rules  # noqa: F401  (registers the built-in rules)
from .analytic import KernelFn, input_kernel, kernel_fn
from .compute import KernelSettingsError, compute_kernels, load_kernels
from .empirical import (
    empirical_kernel_fn,
    empirical_nngp,
    empirical_nngp_fn,
    empirical_ntk,
    empirical_ntk_fn,
    ntk_vector_product,
)
from .inference import (
    Gaussian,
    GradientDescentState,
    cross_entropy_loss_grad,
    gp_inference,
    gradient_descent,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    max_learning_rate,
    mse_loss_grad,
)
from .kernel import Kernel
from .linearize import linearize, taylor_expand
from .monte_carlo import monte_carlo_kernel_fn
from .presets import cnn_gp, myrtle, preset
from .registry import KernelError, RuleContext, get_rule, register_rule
from .regress import kernel_regression

__version__ = "0.1.0"
__all__ = [
    "Gaussian",
    "GradientDescentState",
    "Kernel",
    "KernelError",
    "KernelFn",
    "KernelSettingsError",
    "RuleContext",
    "__version__",
    "cnn_gp",
    "compute_kernels",
    "cross_entropy_loss_grad",
    "empirical_kernel_fn",
    "empirical_nngp",
    "empirical_nngp_fn",
    "empirical_ntk",
    "empirical_ntk_fn",
    "get_rule",
    "gp_inference",
    "gradient_descent",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "input_kernel",
    "kernel_fn",
    "linearize",
    "kernel_regression",
    "load_kernels",
    "max_learning_rate",
    "monte_carlo_kernel_fn",
    "myrtle",
    "mse_loss_grad",
    "ntk_vector_product",
    "preset",
    "register_rule",
    "taylor_expand",
]
