"""widelab-lm-hallucination: language models trained on a knowledge graph.

Knowledge-graph synthesis and readers, serialisation and tokenizer, decoder-only
transformers from the core layer algebra, training with exact resume, the
exact-match hallucination rate, detectors, scaling studies and ReST-EM self-training
(Hron et al., COLM 2024; Singh et al. 2023).
"""

from .corpus import SPECIALS, FactStream, Tokenizer, UnknownTokenError, encode_kg, pack
from .detectors import (
    Detector,
    DetectorConfig,
    DetectorScore,
    auroc,
    average_precision,
    evaluate_detector,
    split_generations,
    token_labels,
    train_detector,
    validation_budget,
)
from .hallucination import (
    Generations,
    RateEstimate,
    bootstrap_ci,
    generate,
    hallucination_rate,
    is_hallucination,
    pass_at_k,
)
from .kg import (
    KGFormatError,
    KGSplit,
    KnowledgeGraph,
    RelationSpec,
    make_kg,
    read_kg,
    read_ntriples,
    read_tsv,
    split_kg,
)
from .layers import TokenEmbedding
from .model import (
    LMConfig,
    flops_per_token,
    hidden_states,
    init_lm,
    logits_fn,
    next_token_loss,
    param_counts,
    size_family,
    transformer,
)
from .runs import Run, load_run, save_run
from .selftrain import RestConfig, evaluate_queries, rest_em
from .studies import (
    ComputeFit,
    StudyPoint,
    chinchilla_compute,
    compute_for_rate,
    fit_rate_vs_compute,
    size_epoch_study,
    train_with_evals,
)
from .train import (
    TrainConfig,
    TrainResult,
    TrainState,
    init_state,
    load_checkpoint,
    make_optimizer,
    peak_flops,
    save_checkpoint,
    train,
)

__version__ = "0.1.0"
__all__ = [
    "SPECIALS",
    "ComputeFit",
    "Detector",
    "DetectorConfig",
    "DetectorScore",
    "FactStream",
    "Generations",
    "KGFormatError",
    "KGSplit",
    "KnowledgeGraph",
    "LMConfig",
    "RateEstimate",
    "RelationSpec",
    "RestConfig",
    "Run",
    "StudyPoint",
    "TokenEmbedding",
    "Tokenizer",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "UnknownTokenError",
    "__version__",
    "auroc",
    "average_precision",
    "bootstrap_ci",
    "chinchilla_compute",
    "compute_for_rate",
    "encode_kg",
    "evaluate_detector",
    "evaluate_queries",
    "fit_rate_vs_compute",
    "flops_per_token",
    "generate",
    "hallucination_rate",
    "hidden_states",
    "init_lm",
    "init_state",
    "is_hallucination",
    "load_checkpoint",
    "load_run",
    "logits_fn",
    "make_kg",
    "make_optimizer",
    "next_token_loss",
    "pack",
    "param_counts",
    "pass_at_k",
    "peak_flops",
    "read_kg",
    "read_ntriples",
    "read_tsv",
    "rest_em",
    "save_checkpoint",
    "save_run",
    "size_epoch_study",
    "size_family",
    "split_generations",
    "split_kg",
    "token_labels",
    "train",
    "train_detector",
    "train_with_evals",
    "transformer",
    "validation_budget",
]
