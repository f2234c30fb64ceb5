"""NT's ``stax.DotGeneral`` over ``widelab_core.layers.DotGeneral``."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np
from widelab_core import layers as L

from ._layer import StaxLayer

_AXES = {"batch_axis": 0, "channel_axis": -1}


def DotGeneral(
    *,
    lhs: Any = None,
    rhs: Any = None,
    dimension_numbers: Any = (((), ()), ((), ())),
    precision: Any = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> StaxLayer:
    """``jax.lax.dot_general`` of the input with a constant ``lhs`` or ``rhs`` (NT's
    ``stax.DotGeneral``); see ``widelab_core.layers.DotGeneral``.

    Supported: a constant whose every axis is contracted with spatial axes of the input
    (a scalar with no contraction multiplies the input), without batch dimensions; both
    ``None`` is the identity.

    Raises:
        ValueError: both ``lhs`` and ``rhs`` are given.
        NotImplementedError: batch dimensions in ``dimension_numbers``, a constant with
            axes that are not contracted (``dot_general`` would then move the input's
            batch or channel axis).
        ShapeError: (when the network sees its input) a contraction of the batch or
            channel axis.
    """
    if lhs is not None and rhs is not None:
        raise ValueError(
            "stax.DotGeneral: at most one of lhs and rhs may be given (the input is the "
            "other operand)"
        )
    for k, v in (("batch_axis", batch_axis), ("channel_axis", channel_axis)):
        if v != _AXES[k]:
            raise NotImplementedError(
                f"stax.DotGeneral: {k}={v!r} is not supported (only {_AXES[k]!r})"
            )
    if lhs is None and rhs is None:
        return StaxLayer(L.Identity())
    (lhs_c, rhs_c), (lhs_b, rhs_b) = dimension_numbers
    if tuple(lhs_b) or tuple(rhs_b):
        raise NotImplementedError(
            f"stax.DotGeneral: batch dimensions {dimension_numbers[1]!r} are not supported "
            "(only ((), ()))"
        )
    is_lhs = rhs is None
    other = np.asarray(lhs if is_lhs else rhs, dtype=np.float64)
    other_axes, input_axes = (tuple(lhs_c), tuple(rhs_c)) if is_lhs else (rhs_c, lhs_c)
    if len(set(a % max(other.ndim, 1) for a in other_axes)) != other.ndim:
        raise NotImplementedError(
            f"stax.DotGeneral: the constant of shape {other.shape} must have every axis "
            f"contracted, got dimension_numbers={dimension_numbers!r}; free constant axes "
            "would reorder the batch and channel axes of the output"
        )
    if isinstance(precision, enum.Enum):
        precision = precision.name.lower()
    try:
        layer = L.DotGeneral(other, tuple(input_axes), tuple(other_axes), precision)
    except ValueError as e:
        raise NotImplementedError(f"stax.DotGeneral: {e}") from None
    return StaxLayer(layer)
