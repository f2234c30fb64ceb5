"""Convolution variants: transposed convolution and locally connected (unshared) layers.

Both act on channels-last inputs ``(batch, *spatial, channels)`` with Neural Tangents'
conventions for padding (``"VALID"``, ``"SAME"``, ``"CIRCULAR"``), weight scaling and
parameterizations (see :class:`widelab_core.layers.Conv`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._base import Layer, ShapeError, check_single, zero_masked
from ._spatial import (
    check_padding,
    normalize_strides,
    normalize_window,
    pad_input,
    spatial_out_shape,
    window_mask,
)
from .conv import conv_dimension_numbers
from .dense import (
    Parameterization,
    add_bias,
    bias_scale,
    check_parameterization,
    draw_bias,
    draw_weights,
    weight_scale,
)


def _check_conv_args(name: str, layer) -> None:
    if int(layer.out_chan) <= 0:
        raise ValueError(f"{name}: out_chan must be positive, got {layer.out_chan}")
    fs = normalize_window(name, "filter_shape", layer.filter_shape)
    object.__setattr__(layer, "filter_shape", fs)
    if layer.strides is not None:
        object.__setattr__(layer, "strides", normalize_strides(name, layer.strides, len(fs)))
    check_padding(name, layer.padding)
    check_parameterization(layer, layer.parameterization)


def transpose_out_size(size: int, window: int, stride: int, padding: str) -> int:
    """Spatial length after a transposed convolution (CIRCULAR has SAME's length)."""
    if padding == "VALID":
        return (size - 1) * stride + window if window >= stride else size * stride
    return size * stride


def _fold_matrix(length: int, n_out: int) -> np.ndarray:
    """``(n_out, length)`` 0/1 matrix summing positions congruent modulo ``n_out``
    around the centre (the wrap-around of a CIRCULAR transposed convolution)."""
    centre = (length - n_out) // 2
    q = np.arange(length)
    fold = np.zeros((n_out, length))
    fold[(q - centre) % n_out, q] = 1.0
    return fold


@dataclasses.dataclass(frozen=True)
class ConvTranspose(Layer):
    """Transposed convolution (the adjoint of a strided convolution, no filter flip).

    Same computation as Neural Tangents' ``stax.ConvTranspose`` with channels last:
    ``y = W_std / sqrt(fan_in) * conv_transpose(x, W) + b_std * b`` with raw
    ``W ~ N(0, 1)`` of shape ``(*filter_shape, n_in, out_chan)``,
    ``fan_in = n_in * prod(filter_shape)`` (``"ntk"`` parameterization; ``"standard"``
    draws ``W ~ N(0, W_std^2 / fan_in)``, ``b ~ N(0, b_std^2)``). ``conv_transpose`` is
    ``jax.lax.conv_transpose``: the input is dilated by ``strides`` and convolved, so a
    length-``n`` axis becomes ``n * stride`` (``"SAME"``) or ``(n - 1) * stride + k``
    (``"VALID"``). ``"CIRCULAR"`` computes the ``"VALID"`` result and wraps the overhang
    around a torus of the ``"SAME"`` length. With i.i.d. taps the infinite-width
    covariance is ``K'(o, o') = W_std^2 / |f| sum_d K(p_d(o), p_d(o')) + b_std^2``, the
    sum over filter taps ``d`` reaching input positions ``p_d`` (Novak et al. 2019,
    "Bayesian deep CNNs with many channels are GPs", eq. 7, applied to the dilated input).

    An output position is padding (masked) if any input position it reads is.

    Args:
        out_chan: number of output channels.
        filter_shape: window size per spatial axis (fixes the number of spatial axes).
        strides: dilation of the input per spatial axis; ``None`` means 1.
        padding: ``"VALID"``, ``"SAME"`` or ``"CIRCULAR"``.
        W_std: weight standard deviation.
        b_std: bias standard deviation; ``None`` means no bias.
        parameterization: ``"ntk"`` or ``"standard"``.

    Raises:
        ValueError: bad hyperparameters (at construction).
        ShapeError: an input of the wrong rank.

    Example:
        >>> import jax
        >>> from widelab_core import layers as L
        >>> L.ConvTranspose(4, (3, 3), (2, 2), "SAME").init(jax.random.key(0), (2, 5, 5, 3))[0]
        (2, 10, 10, 4)
    """

    out_chan: int
    filter_shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: Parameterization = "ntk"

    def __post_init__(self):
        _check_conv_args("ConvTranspose", self)

    @property
    def _strides(self) -> tuple[int, ...]:
        return normalize_strides("ConvTranspose", self.strides, len(self.filter_shape))

    def _out_spatial(self, shape) -> tuple[int, ...]:
        n = len(self.filter_shape)
        if len(shape) != n + 2 or any(s <= 0 for s in shape[1:]):
            raise ShapeError(
                self,
                f"a {n}-D transposed convolution needs inputs (batch, {n} spatial axes, "
                f"channels) of rank {n + 2} with positive sizes, got input shape {shape}",
            )
        return tuple(
            transpose_out_size(s, k, st, self.padding)
            for s, k, st in zip(shape[1:-1], self.filter_shape, self._strides)
        )

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        spatial_out = self._out_spatial(shape)
        n_in = shape[-1]
        fan_in = n_in * math.prod(self.filter_shape)
        dtype = jnp.zeros(()).dtype
        k_w, k_b = jax.random.split(key)
        w_shape = (*self.filter_shape, n_in, self.out_chan)
        params = {"W": draw_weights(k_w, w_shape, fan_in, self.W_std, self.parameterization, dtype)}
        if self.b_std is not None:
            params["b"] = draw_bias(k_b, (self.out_chan,), self.b_std, self.parameterization, dtype)
        return (shape[0], *spatial_out, self.out_chan), params

    def _transpose(self, x, W):
        n = len(self.filter_shape)
        strides = self._strides
        lax_padding = "VALID" if self.padding == "CIRCULAR" else self.padding
        y = jax.lax.conv_transpose(
            x,
            W.astype(x.dtype),
            strides,
            lax_padding,
            dimension_numbers=conv_dimension_numbers(n),
            precision=jax.lax.Precision.HIGHEST,
        )
        if self.padding == "CIRCULAR":
            for i, (size, st) in enumerate(zip(x.shape[1:-1], strides)):
                fold = jnp.asarray(_fold_matrix(y.shape[1 + i], size * st), y.dtype)
                y = jnp.moveaxis(
                    jnp.tensordot(fold, y, axes=[[1], [1 + i]], precision="highest"), 0, 1 + i
                )
        return y

    def apply_masked(self, params, x, mask, key):
        W = params["W"]
        x = jnp.asarray(x)
        n = len(self.filter_shape)
        if x.ndim != n + 2 or x.shape[-1] != W.shape[-2]:
            raise ShapeError(
                self,
                f"input shape {tuple(x.shape)} does not fit weights of shape {tuple(W.shape)} "
                f"(expected rank {n + 2} with {W.shape[-2]} channels)",
            )
        x = zero_masked(x, mask)
        y = self._transpose(x, W)
        fan_in = W.shape[-2] * math.prod(self.filter_shape)
        y = y * weight_scale(self.W_std, fan_in, self.parameterization)
        if "b" in params:
            y = add_bias(y, params["b"], bias_scale(self.b_std, self.parameterization))
        out_mask = None
        if mask is not None:
            ones = jnp.ones((*self.filter_shape, 1, 1), x.dtype)
            out_mask = self._transpose(mask.astype(x.dtype), ones) > 0
        return y, out_mask


@dataclasses.dataclass(frozen=True)
class ConvLocal(Layer):
    """Locally connected layer: a convolution whose weights differ at every output position.

    Same computation as Neural Tangents' ``stax.ConvLocal`` (unshared convolution,
    "locally connected network") with channels last: at output position ``o``,
    ``y[o] = W_std / sqrt(fan_in) * sum_{d, i} x[s o + d, i] W[o, (i, d)] + b_std * b[o]``
    with raw ``W ~ N(0, 1)`` of shape ``(*spatial_out, n_in * prod(filter_shape), out_chan)``
    and a per-position bias ``b`` of shape ``(*spatial_out, out_chan)``;
    ``fan_in = n_in * prod(filter_shape)``. Padding as :class:`Conv`. Because weights are
    not shared, distinct output positions are uncorrelated at infinite width:
    ``K'(o, o') = 1[o = o'] (W_std^2 / |f| sum_d K(s o + d, s o + d) + b_std^2)``
    (Novak et al. 2019, "Bayesian deep CNNs with many channels are GPs", Sec. 5.1: the
    LCN kernel is the CNN kernel's spatial diagonal).

    Args:
        out_chan: number of output channels.
        filter_shape: window size per spatial axis (fixes the number of spatial axes).
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
        >>> L.ConvLocal(4, (3,), padding="SAME").init(jax.random.key(0), (2, 6, 3))[0]
        (2, 6, 4)
    """

    out_chan: int
    filter_shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: Parameterization = "ntk"

    def __post_init__(self):
        _check_conv_args("ConvLocal", self)

    @property
    def _strides(self) -> tuple[int, ...]:
        return normalize_strides("ConvLocal", self.strides, len(self.filter_shape))

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
        w_shape = (*spatial_out, fan_in, self.out_chan)
        params = {"W": draw_weights(k_w, w_shape, fan_in, self.W_std, self.parameterization, dtype)}
        if self.b_std is not None:
            b_shape = (*spatial_out, self.out_chan)
            params["b"] = draw_bias(k_b, b_shape, self.b_std, self.parameterization, dtype)
        return (shape[0], *spatial_out, self.out_chan), params

    def apply_masked(self, params, x, mask, key):
        W = params["W"]
        x = jnp.asarray(x)
        n = len(self.filter_shape)
        fan_in = W.shape[-2]
        if x.ndim != n + 2 or x.shape[-1] * math.prod(self.filter_shape) != fan_in:
            raise ShapeError(
                self,
                f"input shape {tuple(x.shape)} does not fit weights of shape {tuple(W.shape)} "
                f"(expected rank {n + 2} with {fan_in // math.prod(self.filter_shape)} channels)",
            )
        strides = self._strides
        x = zero_masked(x, mask)
        xp, lax_padding = pad_input(x, self.filter_shape, strides, self.padding)
        lhs_spec = conv_dimension_numbers(n)[0]
        patches = jax.lax.conv_general_dilated_patches(
            xp,
            self.filter_shape,
            strides,
            lax_padding,
            dimension_numbers=(lhs_spec, "OI" + lhs_spec[1:-1], lhs_spec),
            precision=jax.lax.Precision.HIGHEST,
        )
        if patches.shape[1:-1] != W.shape[:n]:
            raise ShapeError(
                self,
                f"input shape {tuple(x.shape)} gives {patches.shape[1:-1]} output positions "
                f"but the weights were drawn for {W.shape[:n]}",
            )
        sp = "abcdefghijklm"[:n]
        y = jnp.einsum(f"n{sp}k,{sp}kc->n{sp}c", patches, W.astype(x.dtype), precision="highest")
        y = y * weight_scale(self.W_std, fan_in, self.parameterization)
        if "b" in params:
            b = params["b"].astype(y.dtype)
            y = y + jnp.reshape(b, (1, *b.shape)) * bias_scale(self.b_std, self.parameterization)
        return y, window_mask(mask, self.filter_shape, strides, self.padding)
