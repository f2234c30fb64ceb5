"""Shape-only layers: Identity and Flatten."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from ._base import Layer, check_rank, check_single, zero_masked


@dataclasses.dataclass(frozen=True)
class Identity(Layer):
    """Return the input unchanged."""

    def init(self, key, input_shape):
        return input_shape, ()

    def apply_masked(self, params, x, mask, key):
        return x, mask


@dataclasses.dataclass(frozen=True)
class Flatten(Layer):
    """Flatten all non-batch axes into one channel axis (padded positions become zeros)."""

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        check_rank(self, shape, 1, "a batch axis")
        return (shape[0], math.prod(shape[1:])), ()

    def apply_masked(self, params, x, mask, key):
        x = zero_masked(x, mask)
        return jnp.reshape(x, (x.shape[0], -1)), None
