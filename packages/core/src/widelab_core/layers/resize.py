"""Layers that move positions around without parameters: ``ImageResize`` and ``Index``."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ._base import Layer, ShapeError, check_single, zero_masked

_METHODS = (
    "nearest",
    "linear",
    "bilinear",
    "trilinear",
    "triangle",
    "cubic",
    "bicubic",
    "tricubic",
    "lanczos3",
    "lanczos5",
)


@dataclasses.dataclass(frozen=True)
class ImageResize(Layer):
    """Resize every axis of the input with ``jax.image.resize`` (Neural Tangents'
    ``stax.ImageResize``).

    ``shape`` gives the output size of every axis of ``(batch, *spatial, channels)``;
    ``-1`` keeps an axis. Every method of ``jax.image.resize`` is a fixed linear map
    ``M_i`` along each axis, ``y = (M_1 x M_2 ...) x``, so at infinite width the output
    covariance is the input covariance mapped by ``M_i`` on both position axes,
    ``K'(o, o') = sum_{p, p'} M(o, p) K(p, p') M(o', p')`` (a bilinear transform; see
    Novak et al. 2020, "Neural Tangents", Sec. 3 on linear layers). Padding masks:
    padded inputs are read as zeros, and an output is padding only if every input it
    reads is.

    Args:
        shape: output size per input axis, ``-1`` to keep the axis.
        method: a ``jax.image.ResizeMethod`` or its name (``"nearest"``, ``"linear"``,
            ``"cubic"``, ``"lanczos3"``, ``"lanczos5"`` and their aliases).
        antialias: use an anti-aliasing filter when downsampling (not for ``"nearest"``).
        precision: precision of the resize contractions (a ``jax.lax.Precision`` or its
            name).

    Raises:
        ValueError: an unknown method or a size below ``-1`` or equal to 0.
        ShapeError: ``shape`` has another rank than the input.

    Example:
        >>> import jax
        >>> from widelab_core import layers as L
        >>> L.ImageResize((-1, 8, 8, -1), "linear").init(jax.random.key(0), (2, 4, 4, 3))[0]
        (2, 8, 8, 3)
    """

    shape: tuple[int, ...]
    method: str = "linear"
    antialias: bool = True
    precision: Any = "highest"

    def __post_init__(self):
        try:
            shape = tuple(int(s) for s in self.shape)
        except TypeError:
            raise ValueError(
                f"ImageResize: shape must be a sequence of ints, got {self.shape!r}"
            ) from None
        if any(s == 0 or s < -1 for s in shape):
            raise ValueError(
                f"ImageResize: shape entries must be positive or -1 (keep), got {shape}"
            )
        object.__setattr__(self, "shape", shape)
        method = self.method
        name = method.name if isinstance(method, jax.image.ResizeMethod) else str(method)
        if name.lower() not in _METHODS:
            raise ValueError(f"ImageResize: method must be one of {_METHODS}, got {method!r}")
        object.__setattr__(self, "method", name.lower())

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape for an input of ``shape`` (``-1`` entries keep the axis)."""
        if len(shape) != len(self.shape):
            raise ShapeError(
                self, f"shape {self.shape} needs inputs of rank {len(self.shape)}, got {shape}"
            )
        return tuple(n if s == -1 else s for n, s in zip(shape, self.shape))

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        out = self.out_shape(shape)
        if shape[0] == -1 and self.shape[0] != -1:
            raise ShapeError(self, f"cannot resize an unknown batch size (input shape {shape})")
        return out, ()

    def _resize(self, x):
        return jax.image.resize(
            x, self.out_shape(tuple(x.shape)), self.method, self.antialias, self.precision
        )

    def apply_masked(self, params, x, mask, key):
        x = zero_masked(jnp.asarray(x), mask)
        y = self._resize(x)
        out_mask = None
        if mask is not None:
            keep = jax.image.resize(
                jnp.logical_not(mask).astype(y.dtype),
                self.out_shape(tuple(x.shape))[:-1] + (1,),
                self.method,
                self.antialias,
                self.precision,
            )
            out_mask = keep == 0
        return y, out_mask


def _normalize_index(idx: Any) -> tuple:
    items = idx if isinstance(idx, tuple) else (idx,)
    out = []
    for it in items:
        if it is Ellipsis or isinstance(it, slice):
            out.append(it)
        elif isinstance(it, int) and not isinstance(it, bool):
            out.append(int(it))
        else:
            raise ValueError(
                f"Index: idx entries must be ints, slices or Ellipsis, got {it!r} in {idx!r}"
            )
    if sum(it is Ellipsis for it in out) > 1:
        raise ValueError(f"Index: idx may contain at most one Ellipsis, got {idx!r}")
    return tuple(out)


def expand_index(layer: Layer, idx: tuple, rank: int) -> tuple:
    """``idx`` with its Ellipsis expanded to one entry per axis of a rank-``rank`` input."""
    n_real = sum(it is not Ellipsis for it in idx)
    if n_real > rank:
        raise ShapeError(layer, f"idx {idx!r} indexes {n_real} axes of a rank-{rank} input")
    if Ellipsis in idx:
        e = idx.index(Ellipsis)
        return idx[:e] + (slice(None),) * (rank - n_real) + idx[e + 1 :]
    return idx + (slice(None),) * (rank - n_real)


@dataclasses.dataclass(frozen=True, eq=False)
class Index(Layer):
    """NumPy basic indexing ``x[idx]`` of the input (Neural Tangents' ``stax.Index``).

    ``idx`` is an int, a slice, ``Ellipsis`` or a tuple of them over the axes
    ``(batch, *spatial, channels)``; an int removes its axis. At infinite width the
    covariance of the selected positions is the selected block of the input covariance
    (indexing is a linear map that picks coordinates).

    Args:
        idx: the index, e.g. ``(slice(None), slice(0, 4), 2)``; NT's ``stax.Slice[:, :4, 2]``
            builds it.

    Raises:
        ValueError: an entry that is not an int, slice or Ellipsis.
        ShapeError: an index that does not fit the input shape.

    Example:
        >>> import jax
        >>> from widelab_core import layers as L
        >>> L.Index((slice(None), slice(0, 4), 0)).init(jax.random.key(0), (2, 6, 5, 3))[0]
        (2, 4, 3)
    """

    idx: Any

    def __post_init__(self):
        object.__setattr__(self, "idx", _normalize_index(self.idx))

    def _key(self) -> tuple:
        return tuple(
            ("slice", it.start, it.stop, it.step) if isinstance(it, slice) else it
            for it in self.idx
        )

    def __eq__(self, other):
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def expanded(self, rank: int) -> tuple:
        """``idx`` with one entry (int or slice) per axis of a rank-``rank`` input."""
        return expand_index(self, self.idx, rank)

    def index_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape for an input of ``shape`` (``-1`` batch kept under ``:``)."""
        full = expand_index(self, self.idx, len(shape))
        out = []
        for n, it in zip(shape, full):
            if n == -1:
                if it != slice(None):
                    raise ShapeError(self, f"cannot index an axis of unknown size in {shape}")
                out.append(-1)
            elif isinstance(it, int):
                if not -n <= it < n:
                    raise ShapeError(self, f"index {it} is out of range for an axis of size {n}")
            else:
                out.append(len(range(*it.indices(n))))
        if any(o == 0 for o in out):
            raise ShapeError(self, f"idx {self.idx!r} selects nothing from shape {shape}")
        return tuple(out)

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        return self.index_shape(shape), ()

    def apply_masked(self, params, x, mask, key):
        self.index_shape(tuple(x.shape))
        full = expand_index(self, self.idx, x.ndim)
        y = x[full]
        out_mask = None
        if mask is not None:
            out_mask = mask[full[:-1] + (slice(None),)]
        return y, out_mask
