"""widelab-recsys: two-stage recommenders (nominators on item pools, a ranker), pool
allocation, ranking metrics and two-stage bandit exploration.

References: Hron, Krauth, Jordan & Kilbertus, "On component interactions in two-stage
recommender systems", NeurIPS 2021; the same authors, "Exploration in two-stage
recommender systems", REVEAL workshop 2020.
"""

from .bandit_reference import linucb_numpy_incremental, linucb_reference, two_stage_reference
from .bandits import (
    BanditInstance,
    LinUCBState,
    linucb_init,
    linucb_update,
    make_instance,
    run_linucb,
    run_two_stage,
    simulate_regret,
    synchronise,
)
from .evaluation import auc_at_k, leave_k_out_split, map_at_k, ranking_metrics_at_k
from .features import svd_features
from .metrics import (
    RankingMetrics,
    hits_at_k,
    implicit_precision_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from .nominators import (
    ALSNominator,
    BPRNominator,
    ContextMoENominator,
    LinearNominator,
    Nominator,
    TwoTowerNominator,
    nominator_from_state,
    topk_filtered,
)
from .planted import PlantedData, planted_groups, train_test_split
from .pools import MoEResult, kmeans_pools, learn_pools, random_pools
from .ranker import MLPRanker
from .studies import independent_vs_aligned_study, pool_allocation_study, random_recommendation
from .two_stage import TwoStageRecommender, recommend_all
from .weighting import ranker_importance_weights

__version__ = "0.1.0"
__all__ = [
    "ALSNominator",
    "auc_at_k",
    "leave_k_out_split",
    "map_at_k",
    "ranking_metrics_at_k",
    "BanditInstance",
    "LinUCBState",
    "PlantedData",
    "independent_vs_aligned_study",
    "linucb_init",
    "linucb_numpy_incremental",
    "linucb_reference",
    "linucb_update",
    "make_instance",
    "planted_groups",
    "pool_allocation_study",
    "random_recommendation",
    "run_linucb",
    "run_two_stage",
    "simulate_regret",
    "synchronise",
    "train_test_split",
    "BPRNominator",
    "ContextMoENominator",
    "LinearNominator",
    "MLPRanker",
    "MoEResult",
    "Nominator",
    "RankingMetrics",
    "TwoStageRecommender",
    "TwoTowerNominator",
    "__version__",
    "hits_at_k",
    "implicit_precision_at_k",
    "kmeans_pools",
    "learn_pools",
    "ndcg_at_k",
    "nominator_from_state",
    "precision_at_k",
    "random_pools",
    "ranker_importance_weights",
    "ranking_metrics",
    "recall_at_k",
    "recommend_all",
    "svd_features",
    "topk_filtered",
    "two_stage_reference",
]
