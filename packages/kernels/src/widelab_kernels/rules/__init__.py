"""Analytic kernel rules, one module per layer family (importing registers them)."""

from . import (
    attention,
    combinators,
    dot_general,
    elementwise,
    elementwise_closed,
    graph,
    linear,
    norm,
    position_maps,
    spatial,
)

__all__ = [
    "attention",
    "combinators",
    "dot_general",
    "elementwise",
    "elementwise_closed",
    "graph",
    "linear",
    "norm",
    "position_maps",
    "spatial",
]
