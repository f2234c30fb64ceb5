"""Human-validated information extraction (Butcher et al. 2023).

A person writes a :class:`Schema` of variables; labelling functions (a registry users
extend) emit :class:`Candidate` values with their evidence; the candidates land in a
SQLite :class:`Store`; a person validates them in a local web UI
(:func:`~widelab_lm_hallucination.extraction.server.create_app`), and validated values
are exported with their provenance. :func:`simulate_validation` measures precision and
recall against validation effort on a collection with known answers.

Example:
    >>> from widelab_lm_hallucination.kg import make_kg
    >>> from widelab_lm_hallucination.extraction import (
    ...     Store, labelling_function, run_extraction, synthetic_corpus)
    >>> corpus = synthetic_corpus(make_kg(60, seed=1), seed=1)
    >>> store = Store(":memory:", corpus.schema)
    >>> stats = run_extraction(store, corpus.documents, {"keyword": labelling_function("keyword")},
    ...                        progress=False)
    >>> stats.documents == len(corpus.documents)
    True
"""

from .documents import Document, DocumentError, iter_documents, write_jsonl
from .functions import (
    Candidate,
    LabellingFunction,
    labelling_function,
    labelling_functions,
    make_candidate,
    register_labelling_function,
)
from .lm_function import kg_lm_function, object_likelihood
from .pipeline import (
    EXPORT_FIELDS,
    POLICIES,
    RunStats,
    automatic_values,
    export,
    export_rows,
    queue,
    run_extraction,
)
from .schema import VARIABLE_TYPES, Schema, SchemaError, Variable, read_schema, schema_from_dict
from .store import DECISIONS, SCHEMA_VERSION, Store, StoreError, Validation
from .study import EffortCurve, TimeModel, manual_seconds, simulate_validation, table_quality
from .synthetic import SyntheticCorpus, synthetic_corpus

__all__ = [
    "Candidate",
    "DECISIONS",
    "Document",
    "DocumentError",
    "EXPORT_FIELDS",
    "EffortCurve",
    "LabellingFunction",
    "POLICIES",
    "RunStats",
    "SCHEMA_VERSION",
    "Schema",
    "SchemaError",
    "Store",
    "StoreError",
    "SyntheticCorpus",
    "TimeModel",
    "VARIABLE_TYPES",
    "Validation",
    "Variable",
    "automatic_values",
    "export",
    "export_rows",
    "iter_documents",
    "kg_lm_function",
    "labelling_function",
    "labelling_functions",
    "make_candidate",
    "manual_seconds",
    "object_likelihood",
    "queue",
    "read_schema",
    "register_labelling_function",
    "run_extraction",
    "schema_from_dict",
    "simulate_validation",
    "synthetic_corpus",
    "table_quality",
    "write_jsonl",
]
