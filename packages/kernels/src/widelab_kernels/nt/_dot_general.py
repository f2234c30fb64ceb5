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

    Supported: contracted and batch dimensions between spatial axes of the input and
    axes of the constant, and free (uncontracted) axes of the constant, which become
    spatial axes of the output where NT's kernel puts them: after the input's remaining
    spatial axes for ``rhs``, before them for ``lhs``. The kernel is NT's; the finite
    output keeps the batch axis first and the channel axis last (``dot_general`` itself,
    as in NT's ``apply_fn``, would move them). A scalar with no contraction multiplies
    the input; both ``None`` is the identity.

    Raises:
        ValueError: both ``lhs`` and ``rhs`` are given.
        NotImplementedError: ``batch_axis``/``channel_axis`` other than NT's defaults, or
            the input's batch axis 0 among the batch dimensions (one constant per example).
        ShapeError: (when the network sees its input) a contraction of the batch or
            channel axis, or sizes that differ.
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
    is_lhs = rhs is None
    other = np.asarray(lhs if is_lhs else rhs, dtype=np.float64)
    if is_lhs:
        other_axes, input_axes, other_b, input_b = lhs_c, rhs_c, lhs_b, rhs_b
    else:
        other_axes, input_axes, other_b, input_b = rhs_c, lhs_c, rhs_b, lhs_b
    if 0 in tuple(input_b):
        raise NotImplementedError(
            f"stax.DotGeneral: the batch axis 0 among the batch dimensions "
            f"{dimension_numbers[1]!r} (one constant per example) is not supported"
        )
    if isinstance(precision, enum.Enum):
        precision = precision.name.lower()
    try:
        layer = L.DotGeneral(
            other,
            tuple(input_axes),
            tuple(other_axes),
            precision,
            batch_input_axes=tuple(input_b),
            batch_other_axes=tuple(other_b),
            free_first=is_lhs,
        )
    except ValueError as e:
        raise ValueError(f"stax.DotGeneral: {e}") from None
    return StaxLayer(layer)
