"""``DotGeneral``: contraction of spatial axes of the input with a constant array."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._base import Layer, ShapeError, check_single


@dataclasses.dataclass(frozen=True)
class DotGeneral(Layer):
    """Contract spatial axes of the input with a constant array (the part of Neural
    Tangents' ``stax.DotGeneral`` that keeps the batch axis first and the channel axis
    last).

    ``y[n, r, c] = sum_p A[p] x[n, p, r, c]`` where ``p`` runs over the input axes
    ``input_axes`` (paired in order with the constant's axes ``other_axes``, which must be
    all of its axes) and ``r`` over the remaining spatial axes. A scalar ``other`` with no
    axes multiplies the input. At infinite width the layer is a fixed linear map of
    positions, so the covariance transforms bilinearly,
    ``K'(r, r') = sum_{p, q} A[p] A[q] K((p, r), (q, r'))`` (Novak et al. 2020, "Neural
    Tangents", Sec. 3 on linear layers). Padding masks: an output is padding if no
    non-padding input enters it with a nonzero weight.

    Args:
        other: the constant array (a scalar, nested lists or an array); stored as nested
            tuples of floats so the layer is hashable.
        input_axes: input axes to contract (spatial axes only: not 0, not -1).
        other_axes: the constant's axes paired with ``input_axes`` (every axis of
            ``other`` exactly once).
        precision: precision of the contraction (a ``jax.lax.Precision`` name) or None.

    Raises:
        ValueError: ``other_axes`` is not a permutation of the constant's axes, or the
            two axis lists differ in length.
        ShapeError: a contracted axis is the batch or channel axis, or sizes differ.

    Example:
        >>> import jax
        >>> from widelab_core import layers as L
        >>> L.DotGeneral([1.0, -1.0], (1,), (0,)).init(jax.random.key(0), (5, 2, 30, 3))[0]
        (5, 30, 3)
    """

    other: Any
    input_axes: tuple[int, ...] = ()
    other_axes: tuple[int, ...] = ()
    precision: str | None = None

    def __post_init__(self):
        arr = np.asarray(self.other, dtype=np.float64)
        object.__setattr__(self, "other", _as_tuple(arr) if arr.ndim else float(arr))
        object.__setattr__(self, "input_axes", tuple(int(a) for a in self.input_axes))
        object.__setattr__(self, "other_axes", tuple(int(a) for a in self.other_axes))
        if len(self.input_axes) != len(self.other_axes):
            raise ValueError(
                f"input_axes {self.input_axes} and other_axes {self.other_axes} must have "
                "equal lengths"
            )
        if sorted(a % max(arr.ndim, 1) for a in self.other_axes) != list(range(arr.ndim)):
            raise ValueError(
                f"other_axes={self.other_axes} must name every axis of the constant (shape "
                f"{arr.shape}) exactly once"
            )

    @property
    def array(self) -> np.ndarray:
        """The constant with its axes in the order of ``input_axes`` (float64)."""
        arr = np.asarray(self.other, dtype=np.float64)
        if arr.ndim == 0:
            return arr
        return np.transpose(arr, [a % arr.ndim for a in self.other_axes])

    def axes(self, rank: int) -> tuple[int, ...]:
        """``input_axes`` as non-negative axes of a rank-``rank`` input (checked)."""
        axes = tuple(a % rank for a in self.input_axes)
        bad = [a for a in axes if a in (0, rank - 1)]
        if bad or len(set(axes)) != len(axes):
            raise ShapeError(
                self,
                f"input_axes={self.input_axes} must be distinct spatial axes of a rank-{rank} "
                "input (not the batch axis 0 nor the channel axis -1)",
            )
        return axes

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape for an input of ``shape``."""
        axes = self.axes(len(shape))
        want = self.array.shape
        got = tuple(shape[a] for a in axes)
        if got != want:
            raise ShapeError(
                self,
                f"contracted input sizes {got} (axes {axes} of {shape}) differ from the "
                f"constant's {want}",
            )
        return tuple(n for i, n in enumerate(shape) if i not in axes)

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        return self.out_shape(shape), ()

    def apply_masked(self, params, x, mask, key):
        x = jnp.asarray(x)
        self.out_shape(tuple(x.shape))
        axes = self.axes(x.ndim)
        a = jnp.asarray(self.array, x.dtype)
        contract = (axes, tuple(range(a.ndim)))
        y = jnp.tensordot(x, a, contract, precision=self.precision)
        out_mask = None
        if mask is not None:
            kept = jnp.tensordot((~mask).astype(x.dtype), (a != 0).astype(x.dtype), contract)
            out_mask = kept == 0
        return y, out_mask


def _as_tuple(arr: np.ndarray):
    if arr.ndim == 1:
        return tuple(float(v) for v in arr)
    return tuple(_as_tuple(a) for a in arr)
