"""widelab-games: exposure games, equilibrium search and pre-deployment audits.

After Hron, Krauth, Jordan, Kilbertus & Dean (ICLR 2023), "Modeling Content Creator
Incentives on Algorithm-Curated Platforms".
"""

from .audit import (
    audit_profile,
    catalogue_rating,
    concentration,
    creator_neighbourhood,
    normalized_ratings,
    producer_centric,
    user_centric,
)
from .data import SOURCES, RatingData, from_interactions, load_ratings
from .embeddings import MODELS, Embeddings, demand_users, fit_embeddings
from .game import (
    ExposureGame,
    exposure,
    make_game,
    riemannian_gradients,
    utilities,
)
from .hardmax import (
    FiniteGameAnalysis,
    circle_candidates,
    hardmax_deviation_gains,
    payoff_tensor,
    pure_equilibria,
)
from .secondorder import (
    SecondOrderResult,
    collapse_threshold,
    mean_direction,
    second_order_test,
)
from .solve import (
    EquilibriumSearch,
    best_response_gains,
    continuation,
    find_equilibria,
    random_profiles,
)
from .study import SweepConfig, plot_tau_sweep, run_sweep, solve_and_audit

__version__ = "0.1.0"
__all__ = [
    "MODELS",
    "Embeddings",
    "EquilibriumSearch",
    "ExposureGame",
    "FiniteGameAnalysis",
    "RatingData",
    "SOURCES",
    "SecondOrderResult",
    "SweepConfig",
    "__version__",
    "audit_profile",
    "best_response_gains",
    "catalogue_rating",
    "circle_candidates",
    "collapse_threshold",
    "concentration",
    "continuation",
    "creator_neighbourhood",
    "demand_users",
    "exposure",
    "find_equilibria",
    "fit_embeddings",
    "from_interactions",
    "hardmax_deviation_gains",
    "load_ratings",
    "make_game",
    "mean_direction",
    "normalized_ratings",
    "payoff_tensor",
    "plot_tau_sweep",
    "producer_centric",
    "pure_equilibria",
    "random_profiles",
    "riemannian_gradients",
    "run_sweep",
    "second_order_test",
    "solve_and_audit",
    "user_centric",
    "utilities",
]
