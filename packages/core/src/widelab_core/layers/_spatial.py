"""Shared helpers of the spatial layers (Conv, pooling): padding, output shapes, masks.

Inputs are ``(batch, *spatial, channels)``. Padding follows Neural Tangents' stax:

* ``"VALID"``: no padding;
* ``"SAME"``: zero padding so that ``out = ceil(n / stride)``; the low side gets
  ``total // 2`` (as ``jax.lax.padtype_to_pads``);
* ``"CIRCULAR"``: the same amounts as ``"SAME"``, but filled by wrapping the input
  around (a torus), then a ``"VALID"`` operation.

A padding mask has shape ``(batch, *spatial, 1)``. Through a windowed layer the mask
of an output position is the mask of the input position at the *centre* of its
window (Neural Tangents' ``_pool_mask`` convention), so an unmasked output always has
at least one unmasked input in its window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._base import Layer, ShapeError, check_single

PADDINGS = ("VALID", "SAME", "CIRCULAR")


def normalize_window(layer_name: str, what: str, value: Sequence[int] | int) -> tuple[int, ...]:
    """Return ``value`` as a tuple of positive ints, or raise ``ValueError``."""
    if isinstance(value, int):
        value = (value,)
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise ValueError(
            f"{layer_name}: {what} must be a sequence of ints, got {value!r}"
        ) from None
    if not out or any(v <= 0 for v in out):
        raise ValueError(f"{layer_name}: {what} must be non-empty positive ints, got {value!r}")
    return out


def normalize_strides(
    layer_name: str, strides: Sequence[int] | int | None, n_spatial: int
) -> tuple[int, ...]:
    """``None`` means stride 1 on every spatial axis; lengths must match the window."""
    if strides is None:
        return (1,) * n_spatial
    out = normalize_window(layer_name, "strides", strides)
    if len(out) != n_spatial:
        raise ValueError(
            f"{layer_name}: strides {out} must have one entry per spatial axis "
            f"({n_spatial}, the length of the window / filter shape)"
        )
    return out


def check_padding(layer_name: str, padding: str) -> None:
    """Raise ``ValueError`` unless ``padding`` is VALID, SAME or CIRCULAR."""
    if padding not in PADDINGS:
        raise ValueError(f"{layer_name}: padding must be one of {PADDINGS}, got {padding!r}")


def spatial_pads(
    spatial: Sequence[int], window: Sequence[int], strides: Sequence[int], padding: str
) -> list[tuple[int, int]]:
    """Low/high padding per spatial axis (CIRCULAR pads like SAME)."""
    kind = "VALID" if padding == "VALID" else "SAME"
    return [tuple(p) for p in jax.lax.padtype_to_pads(tuple(spatial), window, strides, kind)]


def spatial_out_shape(
    layer: Layer, input_shape, window: Sequence[int], strides: Sequence[int], padding: str, what
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Check ``(batch, *spatial, channels)`` against the window; return ``(shape, spatial_out)``.

    Raises:
        ShapeError: wrong rank, or a window larger than the (padded) input.
    """
    shape = check_single(layer, input_shape)
    n = len(window)
    if len(shape) != n + 2:
        raise ShapeError(
            layer,
            f"a {n}-D {what} needs inputs (batch, {n} spatial axes, channels) of rank {n + 2}, "
            f"got input shape {shape}",
        )
    spatial = shape[1:-1]
    pads = spatial_pads(spatial, window, strides, padding)
    out = []
    for size, k, s, (lo, hi) in zip(spatial, window, strides, pads):
        o = (size + lo + hi - k) // s + 1
        if size <= 0 or o <= 0:
            raise ShapeError(
                layer,
                f"{what} {tuple(window)} with padding {padding!r} does not fit the spatial "
                f"shape {spatial} of input shape {shape}",
            )
        out.append(o)
    return shape, tuple(out)


def pad_input(
    x: jax.Array, window: Sequence[int], strides: Sequence[int], padding: str
) -> tuple[jax.Array, str]:
    """Wrap-pad ``x`` for CIRCULAR padding; return ``(x, padding_for_lax)``."""
    if padding != "CIRCULAR":
        return x, padding
    pads = spatial_pads(x.shape[1:-1], window, strides, padding)
    return jnp.pad(x, [(0, 0), *pads, (0, 0)], mode="wrap"), "VALID"


def window_mask(
    mask: jax.Array | None, window: Sequence[int], strides: Sequence[int], padding: str
) -> jax.Array | None:
    """The padding mask after a windowed layer: the mask at each window's centre."""
    if mask is None:
        return None
    pads = spatial_pads(mask.shape[1:-1], window, strides, padding)
    index = [slice(None)]
    for size, k, s, (lo, hi) in zip(mask.shape[1:-1], window, strides, pads):
        n_out = (size + lo + hi - k) // s + 1
        start = (k - 1) // 2 - lo
        index.append(slice(start, start + (n_out - 1) * s + 1, s))
    index.append(slice(None))
    return mask[tuple(index)]


def window_sum(
    x: jax.Array, window: Sequence[int], strides: Sequence[int], padding: str
) -> jax.Array:
    """Sum over each window of the spatial axes (zero padding for SAME, wrap for CIRCULAR)."""
    x, lax_padding = pad_input(x, window, strides, padding)
    pads = [(0, 0), *spatial_pads(x.shape[1:-1], window, strides, lax_padding), (0, 0)]
    # A concrete (NumPy) zero keeps this a reduce_window_sum, which JAX can transpose;
    # a traced jnp zero under jit makes it a generic reduction with no reverse-mode rule.
    return jax.lax.reduce_window(
        x,
        np.zeros((), x.dtype),
        jax.lax.add,
        (1, *window, 1),
        (1, *strides, 1),
        pads,
    )


def window_size(window: Sequence[int]) -> int:
    """Number of positions in a window."""
    return math.prod(window)
