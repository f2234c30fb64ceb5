"""``DotGeneral``: ``dot_general`` of spatial axes of the input with a constant array."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._base import Layer, ShapeError, check_single


@dataclasses.dataclass(frozen=True)
class DotGeneral(Layer):
    """``jax.lax.dot_general`` of the input with a constant array, keeping the batch axis
    first and the channel axis last (Neural Tangents' ``stax.DotGeneral``).

    With the input's spatial axes split into contracted ``p`` (``input_axes``, paired
    with the constant's ``other_axes``), batch-paired ``b`` (``batch_input_axes``, paired
    with ``batch_other_axes``) and remaining ``r``, and the constant's other axes free
    (``f``), ``y[n, b, r, f, c] = sum_p A[p, b, f] x[n, p, b, r, c]``. The output's spatial
    axes are ``(b, r, f)``, or ``(b, f, r)`` with ``free_first`` (the order Neural
    Tangents' kernel gives a constant on the left). A scalar ``other`` with no axes
    multiplies the input. At infinite width the layer is a fixed linear map of
    positions, so the covariance transforms bilinearly,
    ``K'((b, r, f), (b', r', f')) = sum_{p, q} A[p, b, f] A[q, b', f'] K((p, b, r),
    (q, b', r'))`` (Novak et al. 2020, "Neural Tangents", Sec. 3 on linear layers).
    Padding masks: an output is padding if no non-padding input enters it with a
    nonzero weight.

    Args:
        other: the constant array (a scalar, nested lists or an array); stored as nested
            tuples of floats so the layer is hashable.
        input_axes: input axes to contract (spatial axes only: not 0, not -1).
        other_axes: the constant's axes paired with ``input_axes``.
        precision: precision of the contraction (a ``jax.lax.Precision`` name) or None.
        batch_input_axes: input spatial axes multiplied elementwise along the constant's
            ``batch_other_axes`` (``dot_general`` batch dimensions).
        batch_other_axes: the constant's axes paired with ``batch_input_axes``.
        free_first: put the constant's free axes before the remaining input axes.

    Raises:
        ValueError: an axis of the constant is named twice or out of range, or paired
            axis lists differ in length.
        ShapeError: a contracted or batch axis is the batch or channel axis, or sizes
            differ.

    Example:
        >>> import jax
        >>> from widelab_core import layers as L
        >>> L.DotGeneral([1.0, -1.0], (1,), (0,)).init(jax.random.key(0), (5, 2, 30, 3))[0]
        (5, 30, 3)
        >>> L.DotGeneral([[1.0, 0.0, 2.0]] * 2, (1,), (0,)).init(
        ...     jax.random.key(0), (5, 2, 30, 3))[0]
        (5, 30, 3, 3)
    """

    other: Any
    input_axes: tuple[int, ...] = ()
    other_axes: tuple[int, ...] = ()
    precision: str | None = None
    batch_input_axes: tuple[int, ...] = ()
    batch_other_axes: tuple[int, ...] = ()
    free_first: bool = False

    def __post_init__(self):
        arr = np.asarray(self.other, dtype=np.float64)
        object.__setattr__(self, "other", _as_tuple(arr) if arr.ndim else float(arr))
        for name in ("input_axes", "other_axes", "batch_input_axes", "batch_other_axes"):
            object.__setattr__(self, name, tuple(int(a) for a in getattr(self, name)))
        object.__setattr__(self, "free_first", bool(self.free_first))
        for a, b in (("input_axes", "other_axes"), ("batch_input_axes", "batch_other_axes")):
            if len(getattr(self, a)) != len(getattr(self, b)):
                raise ValueError(
                    f"{a} {getattr(self, a)} and {b} {getattr(self, b)} must have equal lengths"
                )
        named = self.other_axes + self.batch_other_axes
        canon = [a % arr.ndim for a in named if -arr.ndim <= a < max(arr.ndim, 1)]
        if len(canon) != len(named) or len(set(canon)) != len(canon):
            raise ValueError(
                f"other_axes={self.other_axes} and batch_other_axes={self.batch_other_axes} "
                f"must name distinct axes of the constant (shape {arr.shape}), each at most once"
            )

    @property
    def free_axes(self) -> tuple[int, ...]:
        """The constant's axes that are neither contracted nor batch-paired."""
        nd = np.ndim(self.other)
        named = {a % nd for a in self.other_axes + self.batch_other_axes} if nd else set()
        return tuple(i for i in range(nd) if i not in named)

    @property
    def array(self) -> np.ndarray:
        """The constant with its axes ordered (contracted, batch-paired, free) (float64)."""
        arr = np.asarray(self.other, dtype=np.float64)
        if arr.ndim == 0:
            return arr
        order = [a % arr.ndim for a in self.other_axes + self.batch_other_axes]
        return np.transpose(arr, order + list(self.free_axes))

    def axes(self, rank: int) -> tuple[int, ...]:
        """``input_axes`` as non-negative axes of a rank-``rank`` input (checked)."""
        return self._spatial_axes(rank)[0]

    def _spatial_axes(self, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        contracted = tuple(a % rank for a in self.input_axes)
        batch = tuple(a % rank for a in self.batch_input_axes)
        both = contracted + batch
        bad = [a for a in both if a in (0, rank - 1)]
        if bad or len(set(both)) != len(both):
            raise ShapeError(
                self,
                f"input_axes={self.input_axes} and batch_input_axes={self.batch_input_axes} "
                f"must be distinct spatial axes of a rank-{rank} input (not the batch axis 0 "
                "nor the channel axis -1)",
            )
        return contracted, batch

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape for an input of ``shape``."""
        contracted, batch = self._spatial_axes(len(shape))
        a = self.array
        want = a.shape[: len(contracted) + len(batch)]
        got = tuple(shape[i] for i in contracted + batch)
        if got != want:
            raise ShapeError(
                self,
                f"contracted and batch input sizes {got} (axes {contracted + batch} of "
                f"{shape}) differ from the constant's {want}",
            )
        rest = tuple(shape[i] for i in range(1, len(shape) - 1) if i not in contracted + batch)
        free = a.shape[len(want) :]
        middle = free + rest if self.free_first else rest + free
        return (shape[0], *got[len(contracted) :], *middle, shape[-1])

    def einsum_labels(self, rank: int):
        """``(input labels, constant labels, output labels)`` of the map as an einsum on
        a rank-``rank`` input (the constant in the order of :attr:`array`)."""
        contracted, batch = self._spatial_axes(rank)
        n_free = len(self.free_axes) if np.ndim(self.other) else 0
        free = list(range(rank, rank + n_free))
        rest = [i for i in range(1, rank - 1) if i not in contracted + batch]
        middle = free + rest if self.free_first else rest + free
        out = [0, *batch, *middle, rank - 1]
        return list(range(rank)), [*contracted, *batch, *free], out

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        return self.out_shape(shape), ()

    def apply_masked(self, params, x, mask, key):
        x = jnp.asarray(x)
        self.out_shape(tuple(x.shape))
        a = jnp.asarray(self.array, x.dtype)
        if a.ndim == 0:
            return x * a, mask
        xl, al, out = self.einsum_labels(x.ndim)
        y = jnp.einsum(x, xl, a, al, out, precision=self.precision)
        out_mask = None
        if mask is not None:
            kept = jnp.einsum((~mask).astype(x.dtype), xl, (a != 0).astype(x.dtype), al, out)
            out_mask = kept == 0
        return y, out_mask


def _as_tuple(arr: np.ndarray):
    if arr.ndim == 1:
        return tuple(float(v) for v in arr)
    return tuple(_as_tuple(a) for a in arr)
