"""Local and global pooling over the spatial axes, with padding masks."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from ._base import Layer, ShapeError, check_rank, check_single, zero_masked
from ._spatial import (
    check_padding,
    normalize_strides,
    normalize_window,
    spatial_out_shape,
    window_mask,
    window_size,
    window_sum,
)


@dataclasses.dataclass(frozen=True)
class _Pool(Layer):
    window_shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"

    def __post_init__(self):
        name = type(self).__name__
        ws = normalize_window(name, "window_shape", self.window_shape)
        object.__setattr__(self, "window_shape", ws)
        if self.strides is not None:
            object.__setattr__(self, "strides", normalize_strides(name, self.strides, len(ws)))
        check_padding(name, self.padding)

    @property
    def _strides(self) -> tuple[int, ...]:
        return normalize_strides(type(self).__name__, self.strides, len(self.window_shape))

    def init(self, key, input_shape):
        shape, spatial_out = spatial_out_shape(
            self, input_shape, self.window_shape, self._strides, self.padding, "window"
        )
        return (shape[0], *spatial_out, shape[-1]), ()

    def _check(self, x):
        n = len(self.window_shape)
        if x.ndim != n + 2:
            raise ShapeError(
                self, f"needs inputs of rank {n + 2} (batch, {n} spatial, channels), got {x.shape}"
            )

    def _pooled(self, x, mask, count_edges: bool = False):
        """Window sums of unmasked inputs and the divisor of an average.

        The divisor is ``None`` (use the window size) without a mask; otherwise the
        window size minus the masked positions in it, or, with ``count_edges``, the
        number of unmasked positions inside the input (SAME zeros not counted).
        """
        self._check(x)
        strides = self._strides
        total = window_sum(zero_masked(x, mask), self.window_shape, strides, self.padding)
        if count_edges:
            present = jnp.ones(x.shape[:-1] + (1,), x.dtype)
            if mask is not None:
                present = jnp.where(mask, jnp.zeros((), x.dtype), present)
            return total, window_sum(present, self.window_shape, strides, self.padding)
        if mask is None:
            return total, None
        masked = window_sum(mask.astype(x.dtype), self.window_shape, strides, self.padding)
        return total, window_size(self.window_shape) - masked


@dataclasses.dataclass(frozen=True)
class SumPool(_Pool):
    """Sum over windows of the spatial axes (Neural Tangents' ``stax.SumPool``).

    ``y[p] = sum_{q in window(p)} x[q]`` over unmasked ``q``; ``"SAME"`` pads with zeros,
    ``"CIRCULAR"`` wraps around. Inputs are ``(batch, *spatial, channels)`` with
    ``len(window_shape)`` spatial axes. An output position is masked if the input at
    the centre of its window is.

    Args:
        window_shape: window size per spatial axis.
        strides: step per spatial axis; ``None`` means 1 (as in stax).
        padding: ``"VALID"``, ``"SAME"`` or ``"CIRCULAR"``.

    Raises:
        ValueError: bad hyperparameters.
        ShapeError: wrong input rank or a window larger than the input.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> L.SumPool((2,), strides=(2,)).apply((), jnp.arange(4.0).reshape(1, 4, 1))[0, :, 0]
        Array([1., 5.], dtype=float32)
    """

    def apply_masked(self, params, x, mask, key):
        total, _ = self._pooled(x, mask)
        return total, window_mask(mask, self.window_shape, self._strides, self.padding)


@dataclasses.dataclass(frozen=True)
class AvgPool(_Pool):
    """Average over windows of the spatial axes (Neural Tangents' ``stax.AvgPool``).

    Without a mask, ``y[p] = sum_{q in window(p)} x[q] / prod(window_shape)``: zeros
    added by ``"SAME"`` padding count towards the window size, as in Neural Tangents'
    default (``normalize_edges=False``). With a padding mask, masked positions are left
    out of both the sum and the count: ``y[p] = sum_{q unmasked} x[q] / (prod(window)
    - #masked q in window(p))`` (0 where the whole window is masked). With
    ``normalize_edges=True`` the divisor is the number of unmasked positions of the
    window that lie inside the input (SAME zeros do not count either), so a padded
    sequence gives the same outputs as the truncated one. An output position is masked
    if the input at the centre of its window is.

    Args:
        window_shape: window size per spatial axis.
        strides: step per spatial axis; ``None`` means 1 (as in stax).
        padding: ``"VALID"``, ``"SAME"`` or ``"CIRCULAR"``.
        normalize_edges: divide by the in-input count instead of the window size.

    Raises:
        ValueError: bad hyperparameters.
        ShapeError: wrong input rank or a window larger than the input.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> L.AvgPool((2,), strides=(2,)).apply((), jnp.arange(4.0).reshape(1, 4, 1))[0, :, 0]
        Array([0.5, 2.5], dtype=float32)
    """

    normalize_edges: bool = False

    def apply_masked(self, params, x, mask, key):
        total, count = self._pooled(x, mask, count_edges=self.normalize_edges)
        if count is None:
            y = total / window_size(self.window_shape)
        else:
            y = total / jnp.maximum(count, 1)
        return y, window_mask(mask, self.window_shape, self._strides, self.padding)


@dataclasses.dataclass(frozen=True)
class _GlobalPool(Layer):
    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        check_rank(self, shape, 2, "(batch, ..., channels) inputs of rank >= 2")
        return (shape[0], shape[-1]), ()

    def _sum_and_count(self, x, mask):
        if x.ndim < 2:
            raise ShapeError(self, f"needs (batch, ..., channels) inputs, got shape {x.shape}")
        axes = tuple(range(1, x.ndim - 1))
        total = jnp.sum(zero_masked(x, mask), axis=axes)
        if mask is None:
            count = None
            out_mask = None
        else:
            count = jnp.sum(~mask, axis=axes).astype(x.dtype)
            out_mask = jnp.all(mask, axis=axes)
        return total, count, out_mask, axes


@dataclasses.dataclass(frozen=True)
class GlobalSumPool(_GlobalPool):
    """Sum over all spatial axes: ``(batch, *spatial, c) -> (batch, c)``; masked positions
    are left out. Neural Tangents' ``stax.GlobalSumPool``.

    Raises:
        ShapeError: inputs of rank below 2.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> L.GlobalSumPool().apply((), jnp.ones((2, 3, 4, 5))).shape
        (2, 5)
    """

    def apply_masked(self, params, x, mask, key):
        total, _, out_mask, _ = self._sum_and_count(x, mask)
        return total, out_mask


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool(_GlobalPool):
    """Mean over all spatial axes: ``(batch, *spatial, c) -> (batch, c)``.

    With a padding mask the mean runs over unmasked positions only (divided by their
    count; 0 for a fully padded input, whose output is then masked). Neural Tangents'
    ``stax.GlobalAvgPool``.

    Raises:
        ShapeError: inputs of rank below 2.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> L.GlobalAvgPool().apply((), jnp.ones((2, 3, 4, 5))).shape
        (2, 5)
    """

    def apply_masked(self, params, x, mask, key):
        total, count, out_mask, axes = self._sum_and_count(x, mask)
        if count is None:
            size = 1
            for a in axes:
                size *= x.shape[a]
            return total / size, None
        return total / jnp.maximum(count, 1), out_mask
