"""Convolution over any number of spatial axes, channels last."""

from __future__ import annotations

import dataclasses
import math
import string

import jax
import jax.numpy as jnp

from ._base import Layer, ShapeError, zero_masked
from ._spatial import (
    check_padding,
    normalize_strides,
    normalize_window,
    pad_input,
    spatial_out_shape,
    window_mask,
)
from .dense import (
    Parameterization,
    add_bias,
    bias_scale,
    check_parameterization,
    draw_bias,
    draw_weights,
    weight_scale,
)

_SPATIAL_LETTERS = "".join(c for c in string.ascii_uppercase if c not in "NCIO")


def conv_dimension_numbers(n_spatial: int) -> tuple[str, str, str]:
    """``(lhs, rhs, out)`` specs for channels-last inputs and ``(*filter, in, out)`` weights."""
    if n_spatial > len(_SPATIAL_LETTERS):
        raise ValueError(f"Conv: at most {len(_SPATIAL_LETTERS)} spatial axes, got {n_spatial}")
    sp = _SPATIAL_LETTERS[:n_spatial]
    return f"N{sp}C", f"{sp}IO", f"N{sp}C"


@dataclasses.dataclass(frozen=True)
class Conv(Layer):
    """Convolution over the spatial axes of ``(batch, *spatial, channels)`` inputs.

    Same computation as Neural Tangents' ``stax.Conv`` with channels last. With
    ``n_in`` input channels and ``fan_in = n_in * prod(filter_shape)``:

    * ``parameterization="ntk"``: ``y = W_std / sqrt(fan_in) * conv(x, W) + b_std * b``
      with raw ``W ~ N(0, 1)`` of shape ``(*filter_shape, n_in, out_chan)`` and
      ``b ~ N(0, 1)`` of shape ``(out_chan,)`` (Jacot et al. 2018, NTK parameterization);
    * ``parameterization="standard"``: ``y = conv(x, W) + b`` with
      ``W ~ N(0, W_std^2 / fan_in)``, ``b ~ N(0, b_std^2)``.

    ``conv`` is cross-correlation (no filter flip), as ``jax.lax.conv_general_dilated``.
    Padding: ``"VALID"`` (none), ``"SAME"`` (zeros, output ``ceil(n / stride)``) or
    ``"CIRCULAR"`` (wrap the input around by the SAME amounts, then VALID). Padded
    (masked) input positions are set to zero before the convolution; an output
    position is masked if the input at the centre of its window is.

    Args:
        out_chan: number of output channels.
        filter_shape: window size per spatial axis; its length fixes the number of
            spatial axes (input rank is ``len(filter_shape) + 2``).
        strides: step per spatial axis; ``None`` means 1.
        padding: ``"VALID"``, ``"SAME"`` or ``"CIRCULAR"``.
        W_std: weight standard deviation.
        b_std: bias standard deviation; ``None`` means no bias.
        parameterization: ``"ntk"`` or ``"standard"``.

    Raises:
        ValueError: bad hyperparameters (at construction).
        ShapeError: an input of the wrong rank, or spatial axes smaller than the window.

    Example:
        >>> import jax
        >>> from widelab_core import layers as L
        >>> L.Conv(4, (3, 3), padding="SAME").init(jax.random.key(0), (2, 8, 8, 3))[0]
        (2, 8, 8, 4)
    """

    out_chan: int
    filter_shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: Parameterization = "ntk"

    def __post_init__(self):
        if int(self.out_chan) <= 0:
            raise ValueError(f"Conv: out_chan must be positive, got {self.out_chan}")
        fs = normalize_window("Conv", "filter_shape", self.filter_shape)
        object.__setattr__(self, "filter_shape", fs)
        if self.strides is not None:
            object.__setattr__(self, "strides", normalize_strides("Conv", self.strides, len(fs)))
        check_padding("Conv", self.padding)
        check_parameterization(self, self.parameterization)

    @property
    def _strides(self) -> tuple[int, ...]:
        return normalize_strides("Conv", self.strides, len(self.filter_shape))

    def init(self, key, input_shape):
        shape, spatial_out = spatial_out_shape(
            self, input_shape, self.filter_shape, self._strides, self.padding, "filter"
        )
        n_in = shape[-1]
        if n_in <= 0:
            raise ShapeError(self, f"input has {n_in} channels in shape {shape}")
        fan_in = n_in * math.prod(self.filter_shape)
        dtype = jnp.zeros(()).dtype
        k_w, k_b = jax.random.split(key)
        w_shape = (*self.filter_shape, n_in, self.out_chan)
        params = {"W": draw_weights(k_w, w_shape, fan_in, self.W_std, self.parameterization, dtype)}
        if self.b_std is not None:
            params["b"] = draw_bias(k_b, (self.out_chan,), self.b_std, self.parameterization, dtype)
        return (shape[0], *spatial_out, self.out_chan), params

    def apply_masked(self, params, x, mask, key):
        W = params["W"]
        n = len(self.filter_shape)
        if x.ndim != n + 2 or x.shape[-1] != W.shape[-2]:
            raise ShapeError(
                self,
                f"input shape {tuple(x.shape)} does not fit weights of shape {tuple(W.shape)} "
                f"(expected rank {n + 2} with {W.shape[-2]} channels)",
            )
        strides = self._strides
        x = zero_masked(x, mask)
        xp, lax_padding = pad_input(x, self.filter_shape, strides, self.padding)
        y = jax.lax.conv_general_dilated(
            xp,
            W.astype(x.dtype),
            window_strides=strides,
            padding=lax_padding,
            dimension_numbers=conv_dimension_numbers(n),
        )
        fan_in = W.shape[-2] * math.prod(self.filter_shape)
        y = y * weight_scale(self.W_std, fan_in, self.parameterization)
        if "b" in params:
            y = add_bias(y, params["b"], bias_scale(self.b_std, self.parameterization))
        return y, window_mask(mask, self.filter_shape, strides, self.padding)
