"""widelab-bayes: Wide Bayesian neural networks."""

__version__ = "0.1.0"
__all__ = ["__version__"]

# --- issue 5 exports (owned by the approx engineer) ---
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
# --- end issue 5 ---
