"""Padding masks through the position-map layers: ConvTranspose, ConvLocal, ImageResize.

These layers read their input with padded positions set to zero (``apply`` zeroes them,
as Neural Tangents' masked ``apply_fn`` does), so their kernel rules run on the input
kernel with the covariances of padded positions zeroed. The output masks are the ones
the finite-width layer returns from ``apply_masked`` (Novak et al. 2020, "Neural
Tangents", the ``mask_constant`` convention):

* ConvTranspose: an output position is padding if any input position it reads is;
* ConvLocal: the mask at the centre of each window, as for ``Conv``;
* ImageResize: an output position is padding only if every input it reads is.

Masked output positions keep their covariances (the next layer that reads positions
zeroes them again), as ``apply`` keeps their values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax.numpy as jnp
from widelab_core import layers as L

from ..kernel import Kernel
from ..registry import RuleContext
from .spatial import _centre, zero_padding_positions

MaskFn = Callable[[object, jnp.ndarray], jnp.ndarray]


def _finite_mask(layer: L.Layer, params, mask):
    """The output mask ``layer.apply_masked`` gives for an ``(n, *S)`` input mask."""
    m = mask[..., None]
    x = jnp.zeros(m.shape, jnp.float32)
    _, out = layer.apply_masked(params, x, m, None)
    return out[..., 0]


def _transpose_mask(layer: L.ConvTranspose, mask):
    probe = L.ConvTranspose(1, layer.filter_shape, layer.strides, layer.padding)
    w = jnp.ones((*layer.filter_shape, 1, 1), jnp.float32)
    return _finite_mask(probe, {"W": w}, mask)


def _local_mask(layer: L.ConvLocal, mask):
    fs = tuple(layer.filter_shape)
    return _centre(mask, fs, layer.strides or (1,) * len(fs), layer.padding)


def _resize_mask(layer: L.ImageResize, mask):
    return _finite_mask(layer, (), mask)


def with_masks(rule: Callable, mask_fn: MaskFn) -> Callable:
    """Wrap a position-map rule that knows nothing of masks: zero the padded positions of
    its input kernel, run it, and give the output kernel the layer's output masks."""

    @functools.wraps(rule)
    def masked_rule(layer, k: Kernel, ctx: RuleContext):
        if isinstance(k, list) or (k.mask1 is None and k.mask2 is None):
            return rule(layer, k, ctx)
        bare = zero_padding_positions(k).replace(mask1=None, mask2=None)
        out = rule(layer, bare, ctx)
        out_mask = lambda m: None if m is None else mask_fn(layer, m)
        return out.replace(mask1=out_mask(k.mask1), mask2=out_mask(k.mask2))

    return masked_rule


MASK_FNS: dict[type, MaskFn] = {
    L.ConvTranspose: _transpose_mask,
    L.ConvLocal: _local_mask,
    L.ImageResize: _resize_mask,
}
