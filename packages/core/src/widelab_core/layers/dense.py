"""Fully connected layer with NTK or standard parameterization."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from ._base import Layer, ShapeError, check_rank, check_single

Parameterization = Literal["ntk", "standard"]


def check_parameterization(layer: Layer, parameterization: str) -> None:
    """Raise ``ValueError`` for a parameterization other than ``ntk``/``standard``."""
    if parameterization not in ("ntk", "standard"):
        raise ValueError(
            f"{layer.describe()}: parameterization must be 'ntk' or 'standard', "
            f"got {parameterization!r}"
        )


def draw_weights(key, shape, fan_in, W_std, parameterization, dtype):
    """Draw raw weights: N(0, 1) for "ntk", N(0, W_std^2 / fan_in) for "standard"."""
    w = jax.random.normal(key, shape, dtype)
    if parameterization == "standard":
        w = w * (W_std / jnp.sqrt(fan_in))
    return w


def draw_bias(key, shape, b_std, parameterization, dtype):
    """Draw raw biases: N(0, 1) for "ntk", N(0, b_std^2) for "standard"."""
    b = jax.random.normal(key, shape, dtype)
    if parameterization == "standard":
        b = b * b_std
    return b


def weight_scale(W_std, fan_in, parameterization):
    """Multiplier applied to raw weights in the forward pass."""
    if parameterization == "ntk":
        return W_std / jnp.sqrt(fan_in)
    return 1.0


def bias_scale(b_std, parameterization):
    """Multiplier applied to raw biases in the forward pass."""
    return b_std if parameterization == "ntk" else 1.0


def add_bias(y, b, scale):
    """``y + scale * b`` with the per-channel bias ``b`` broadcast explicitly over the
    leading axes of ``y`` (rank promotion is an error in this workspace)."""
    b = jnp.reshape(b.astype(y.dtype), (1,) * (y.ndim - 1) + (b.shape[-1],))
    return y + b * scale


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
    """Fully connected layer acting on the last (channel) axis.

    With ``parameterization="ntk"``: ``y = W_std / sqrt(n_in) * x @ W + b_std * b`` with
    ``W, b ~ N(0, 1)``. With ``"standard"``: ``y = x @ W + b``, ``W ~ N(0, W_std^2 / n_in)``,
    ``b ~ N(0, b_std^2)``. ``b_std=None`` means no bias.

    Example:
        >>> import jax
        >>> from widelab_core import layers as L
        >>> shape, params = L.Dense(3, W_std=1.5).init(jax.random.key(0), (2, 4))
        >>> shape
        (2, 3)
    """

    out_dim: int
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: Parameterization = "ntk"

    def __post_init__(self):
        if int(self.out_dim) <= 0:
            raise ValueError(f"Dense: out_dim must be positive, got {self.out_dim}")
        check_parameterization(self, self.parameterization)

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        check_rank(self, shape, 1, "at least a channel axis")
        n_in = shape[-1]
        if n_in <= 0:
            raise ShapeError(self, f"input has {n_in} channels in shape {shape}")
        dtype = jnp.zeros(()).dtype
        k_w, k_b = jax.random.split(key)
        params = {
            "W": draw_weights(
                k_w, (n_in, self.out_dim), n_in, self.W_std, self.parameterization, dtype
            )
        }
        if self.b_std is not None:
            params["b"] = draw_bias(k_b, (self.out_dim,), self.b_std, self.parameterization, dtype)
        return shape[:-1] + (self.out_dim,), params

    def apply_masked(self, params, x, mask, key):
        W = params["W"]
        if x.shape[-1] != W.shape[0]:
            raise ShapeError(
                self,
                f"input has {x.shape[-1]} channels (shape {tuple(x.shape)}) but the "
                f"weights expect {W.shape[0]} (shape {tuple(W.shape)})",
            )
        y = (x @ W) * weight_scale(self.W_std, W.shape[0], self.parameterization)
        if "b" in params:
            y = add_bias(y, params["b"], bias_scale(self.b_std, self.parameterization))
        return y, mask
