"""NT's ``stax.Aggregate`` over ``widelab_core.layers.Aggregate``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from widelab_core import layers as L

from ._layer import StaxLayer

_AXES = {"batch_axis": 0, "channel_axis": -1}


def _identity(p):
    return p


def Aggregate(
    aggregate_axis: Any = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    to_dense: Callable[[Any], Any] | None = _identity,
    implementation: Any = "DENSE",
) -> StaxLayer:
    """Graph aggregation (NT's ``stax.Aggregate``): each vertex becomes the (weighted)
    sum of its direct predecessors; see ``widelab_core.layers.Aggregate``.

    The graphs come with each call, as in NT: ``apply_fn(params, x, pattern=p)`` and
    ``kernel_fn(x1, x2, get, pattern=(p1, p2))``. ``implementation`` ``"DENSE"``:
    ``to_dense(pattern)`` is the adjacency ``(batch, *V, *V)``; ``"SPARSE"``: integer
    edge lists ``(batch, n_edges, K, 2)`` (tails, heads), negative coordinates for padding.

    Args:
        aggregate_axis: the vertex axes (spatial axes of the input); ``None``: all.
        batch_axis: only ``0``.
        channel_axis: only ``-1``.
        to_dense: for ``"DENSE"``, turns the given pattern into the dense adjacency.
        implementation: ``"DENSE"``, ``"SPARSE"`` or an ``AggregateImplementation``.

    Raises:
        NotImplementedError: another ``batch_axis``/``channel_axis``.
        ValueError: an unknown ``implementation``.
    """
    for k, v in (("batch_axis", batch_axis), ("channel_axis", channel_axis)):
        if v != _AXES[k]:
            raise NotImplementedError(
                f"stax.Aggregate: {k}={v!r} is not supported (only {_AXES[k]!r})"
            )
    dense = None if to_dense is None or to_dense is _identity else to_dense
    return StaxLayer(
        L.Aggregate(aggregate_axis, getattr(implementation, "value", implementation), dense)
    )
