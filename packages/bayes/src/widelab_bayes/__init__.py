"""widelab-bayes: Wide Bayesian neural networks.

Posteriors of networks written in the core layer algebra: log-densities, the
repriorisation of Hron et al. 2022 with generalised HMC, blackjax baselines,
rank-normalised diagnostics in function space, exact rejection sampling
(Hron et al. 2020) and MMD against the NNGP (Matthews et al. 2018); plus the
approximate-inference methods.
"""

from .diagnostics import ess_bulk, ess_tail, function_space_ess, random_projections, rhat
from .mmd import (
    gp_samples,
    median_heuristic,
    mmd2_gaussians,
    mmd2_jackknife_se,
    mmd2_to_gp,
    mmd2_unbiased,
    network_prior_samples,
    relu_nngp,
)
from .model import BNN, ModelError, split_readout
from .rejection import (
    RejectionResult,
    likelihood_bound,
    marginal_likelihood_bound,
    marginalised_rejection_sample,
    rejection_sample,
)
from .repriorise import Repriorised, spd_logdet_quad, tril_inverse
from .runs import clear_program_cache, precompile, program_cache_info
from .samplers import (
    GHMCInfo,
    GHMCState,
    SampleResult,
    flat_logdensity,
    ghmc_init,
    ghmc_step,
    sample_blackjax,
    sample_ghmc,
)

__version__ = "0.1.0"
__all__ = [
    "BNN",
    "GHMCInfo",
    "GHMCState",
    "ModelError",
    "RejectionResult",
    "Repriorised",
    "SampleResult",
    "__version__",
    "clear_program_cache",
    "ess_bulk",
    "ess_tail",
    "flat_logdensity",
    "function_space_ess",
    "ghmc_init",
    "ghmc_step",
    "gp_samples",
    "likelihood_bound",
    "marginal_likelihood_bound",
    "marginalised_rejection_sample",
    "precompile",
    "program_cache_info",
    "median_heuristic",
    "mmd2_gaussians",
    "mmd2_to_gp",
    "mmd2_jackknife_se",
    "mmd2_unbiased",
    "network_prior_samples",
    "random_projections",
    "rejection_sample",
    "relu_nngp",
    "rhat",
    "sample_blackjax",
    "sample_ghmc",
    "split_readout",
    "spd_logdet_quad",
    "tril_inverse",
]

# Real data, network presets, likelihoods, priors, samplers for near-Gaussian targets,
# data-sharded densities and the image studies.
from .data import ImageSubset, load_image_subset, one_hot_targets  # noqa: E402
from .gaussian_reference import (  # noqa: E402
    elliptical_slice_step,
    pcn_step,
    sample_elliptical_slice,
    sample_pcn,
)
from .likelihoods import Categorical, Gaussian  # noqa: E402
from .networks import fcn, resnet, scaled_residual  # noqa: E402
from .priors import PriorError, prior_kind, register_prior  # noqa: E402
from .scale_studies import image_ess_vs_width, image_mmd_vs_width, kl_vs_width  # noqa: E402
from .sharded import data_mesh, sharded_log_hidden_density, spread_chains  # noqa: E402

__all__ += [
    "Categorical",
    "Gaussian",
    "ImageSubset",
    "PriorError",
    "data_mesh",
    "elliptical_slice_step",
    "fcn",
    "image_ess_vs_width",
    "image_mmd_vs_width",
    "kl_vs_width",
    "load_image_subset",
    "one_hot_targets",
    "pcn_step",
    "prior_kind",
    "register_prior",
    "resnet",
    "sample_elliptical_slice",
    "sample_pcn",
    "scaled_residual",
    "sharded_log_hidden_density",
    "spread_chains",
]

# Approximate inference: dropout methods, sliced Wasserstein, successor uncertainties.
from .dropout import (  # noqa: E402
    ConcreteDropout,
    MCPrediction,
    concrete_dropout_regulariser,
    concrete_dropout_study,
    dropout_probabilities,
    dropout_probability,
    heteroscedastic_nll,
    mc_dropout_predict,
)
from .gaussian_dropout import (  # noqa: E402
    additive_spurious_minimum,
    expected_log_square,
    gaussian_dropout_kl,
    gaussian_dropout_kl_quadrature,
    log_uniform_posterior_mass,
    molchanov_kl,
    qkl_degenerate_gaussian,
    qkl_optimal_degenerate,
)
from .sliced_wasserstein import (  # noqa: E402
    projected_wasserstein,
    random_directions,
    sliced_wasserstein,
    sliced_wasserstein_gaussian,
    wasserstein_1d,
    wasserstein_exact,
)
from .successor import (  # noqa: E402
    BayesLinReg,
    BinaryTreeMDP,
    DeepSea,
    EpsilonGreedyQ,
    NeuralSU,
    TabularSU,
    UniformAgent,
    run_episodes,
    scaling_study,
    uniform_median_episodes,
)

__all__ += [
    "BayesLinReg",
    "BinaryTreeMDP",
    "ConcreteDropout",
    "DeepSea",
    "EpsilonGreedyQ",
    "MCPrediction",
    "NeuralSU",
    "TabularSU",
    "UniformAgent",
    "additive_spurious_minimum",
    "concrete_dropout_regulariser",
    "concrete_dropout_study",
    "dropout_probabilities",
    "dropout_probability",
    "expected_log_square",
    "gaussian_dropout_kl",
    "gaussian_dropout_kl_quadrature",
    "heteroscedastic_nll",
    "log_uniform_posterior_mass",
    "mc_dropout_predict",
    "molchanov_kl",
    "projected_wasserstein",
    "qkl_degenerate_gaussian",
    "qkl_optimal_degenerate",
    "random_directions",
    "run_episodes",
    "scaling_study",
    "sliced_wasserstein",
    "sliced_wasserstein_gaussian",
    "uniform_median_episodes",
    "wasserstein_1d",
    "wasserstein_exact",
]
