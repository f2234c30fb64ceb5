"""Neural Tangents' ``batch`` over widelab's tiling (``widelab_core.devices``)."""

from __future__ import annotations

import collections
from collections.abc import Callable

import jax.numpy as jnp
from widelab_core.devices import pairwise_tiled

_Both = collections.namedtuple("Kernel", ("nngp", "ntk"))


def batch(
    kernel_fn: Callable,
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
) -> Callable:
    """NT's ``batch``: the same kernel function, evaluated ``batch_size x batch_size``
    tile by tile over all devices (``widelab_core.devices.pairwise_tiled``).

    Args:
        kernel_fn: ``kernel_fn(x1, x2=None, get=None, *args, **kwargs)`` whose outputs
            have leading axes ``(n1, n2)`` (analytic, empirical or Monte Carlo).
        batch_size: tile edge; ``0`` means no tiling (``kernel_fn`` is returned).
        device_count: ``-1`` (all devices) or a positive count; tiles are spread over
            every device either way.
        store_on_device: accepted for compatibility; tiles are gathered in host memory
            and returned as jax arrays.

    Returns:
        ``batched(x1, x2=None, get=None, *args, **kwargs)``: ``get`` a string gives an
        array, a tuple (or ``None``: ``("nngp", "ntk")``) a named tuple. ``n1`` and
        ``n2`` need not be multiples of ``batch_size``.

    Raises:
        ValueError: negative ``batch_size``.
    """
    if int(batch_size) < 0:
        raise ValueError(f"batch: batch_size must be >= 0, got {batch_size}")
    if not isinstance(store_on_device, bool):
        raise TypeError(f"batch: store_on_device must be a bool, got {store_on_device!r}")
    if int(batch_size) == 0:
        return kernel_fn

    def batched(x1, x2=None, get=None, *args, **kwargs):
        names = ("nngp", "ntk") if get is None else get
        x1 = jnp.asarray(x1)
        # x2=None: tiles of x1 against a copy of itself (every tile computed, none
        # mirrored, since spatial layouts differ between kernel functions)
        xb = jnp.array(x1, copy=True) if x2 is None else jnp.asarray(x2)

        def tile(a, b):
            out = kernel_fn(a, b, names, *args, **kwargs)
            return out if isinstance(names, str) else tuple(out)

        out = pairwise_tiled(tile, x1, xb, batch_size=int(batch_size))
        if isinstance(names, str):
            return out
        if get is None:
            return _Both(*out)
        return collections.namedtuple("Kernel", tuple(names))(*out)

    return batched


__all__ = ["batch"]
