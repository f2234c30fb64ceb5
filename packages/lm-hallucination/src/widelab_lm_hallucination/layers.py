"""The layer this package adds to the core algebra: token plus position embedding.

It is a :class:`widelab_core.layers.Layer` value (a frozen dataclass with ``init`` /
``apply_masked``), so it composes with ``serial``, ``FanOut``, ``FanInSum`` and
``repeat`` like any core layer. Attention and LayerNorm come from core
(``GlobalSelfAttention(..., causal=True)``, ``LayerNorm()``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from widelab_core.extend import check_single
from widelab_core.layers import Layer, ShapeError


@dataclasses.dataclass(frozen=True)
class TokenEmbedding(Layer):
    """Integer ids ``(batch, seq)`` to ``(batch, seq, d_model)``: token plus learned position.

    Attributes:
        vocab_size: number of ids.
        d_model: embedding width.
        max_len: longest sequence (positions ``0 .. max_len - 1``).
        init_std: standard deviation of both tables at initialisation.
    """

    vocab_size: int
    d_model: int
    max_len: int
    init_std: float = 0.02

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        if len(shape) != 2:
            raise ShapeError(self, f"expects (batch, seq) ids, got shape {shape}")
        if shape[1] > self.max_len:
            raise ShapeError(self, f"sequence length {shape[1]} exceeds max_len {self.max_len}")
        k1, k2 = jax.random.split(key)
        params = {
            "tok": self.init_std * jax.random.normal(k1, (self.vocab_size, self.d_model)),
            "pos": self.init_std * jax.random.normal(k2, (self.max_len, self.d_model)),
        }
        return shape + (self.d_model,), params

    def apply_masked(self, params, x, mask, key):
        if x.ndim != 2:
            raise ShapeError(self, f"expects (batch, seq) ids, got shape {tuple(x.shape)}")
        seq = x.shape[1]
        y = jnp.take(params["tok"], x, axis=0) + params["pos"][None, :seq, :]
        return y, None
