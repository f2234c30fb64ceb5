"""Neural Tangents' ``batch`` over widelab's tiling (``widelab_core.devices``)."""

from __future__ import annotations

import collections
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
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
        ``n2`` need not be multiples of ``batch_size``. As in NT, an array-valued keyword
        argument is a pair ``(for_x1, for_x2)`` of per-example arrays (e.g.
        ``pattern=(pattern1, pattern2)`` of graph networks; ``(pattern1, None)`` when
        ``x2`` is None), cut into tiles with the inputs; other keyword arguments and
        ``args`` go to every tile as they are.

    Raises:
        ValueError: negative ``batch_size``; an array-valued keyword argument that is not
            such a pair.
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
        rows1, rows2, rest = _split_rows(kwargs, x2 is None)

        def tile(a, b):
            (a, ka), (b, kb) = a, b
            pairs = {k: (ka[k], kb[k]) for k in ka}
            out = kernel_fn(a, b, names, *args, **rest, **pairs)
            return out if isinstance(names, str) else tuple(out)

        out = pairwise_tiled(tile, (x1, rows1), (xb, rows2), batch_size=int(batch_size))
        if isinstance(names, str):
            return out
        if get is None:
            return _Both(*out)
        return collections.namedtuple("Kernel", tuple(names))(*out)

    return batched


def _is_array_valued(v) -> bool:
    leaves = [a for a in jax.tree_util.tree_leaves(v) if a is not None]
    return bool(leaves) and all(isinstance(a, np.ndarray | jax.Array) for a in leaves)


def _split_rows(kwargs: dict, x2_is_none: bool) -> tuple[dict, dict, dict]:
    """NT's split of keyword arguments: array-valued ones are ``(for_x1, for_x2)`` pairs
    of per-example arrays (tiled), the rest is passed whole."""
    rows1, rows2, rest = {}, {}, {}
    for k, v in kwargs.items():
        if k == "rng" or not _is_array_valued(v):
            rest[k] = v
            continue
        if not (isinstance(v, tuple | list) and len(v) == 2):
            raise ValueError(
                f"batch: keyword argument {k} is an array; give a pair ({k}1, {k}2) of "
                "per-example arrays for x1 and x2, as Neural Tangents' batch does"
            )
        v1, v2 = v
        if v2 is None and x2_is_none:
            v2 = v1
        if v1 is None or v2 is None:
            raise ValueError(
                f"batch: keyword argument {k} has one side None; give both ({k}1, {k}2), "
                f"or ({k}1, None) when x2 is None"
            )
        rows1[k] = jax.tree_util.tree_map(jnp.asarray, v1)
        rows2[k] = jax.tree_util.tree_map(jnp.asarray, v2)
    return rows1, rows2, rest


__all__ = ["batch"]
