"""Neural Tangents' ``MaskedArray`` and ``unmask_fn``: what ``apply_fn(...,
mask_constant=c)`` returns and how to turn it back into plain arrays.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from widelab_kernels.nt import stax
    >>> init_fn, apply_fn, _ = stax.serial(stax.Dense(3), stax.Relu())
    >>> x = jnp.array([[[1.0], [0.0]]])  # the second position is padding
    >>> _, params = init_fn(jax.random.key(0), x.shape)
    >>> out = apply_fn(params, x, mask_constant=0.0)
    >>> out.mask.ravel().tolist()
    [False, True]
    >>> stax.unmask_fn(apply_fn)(params, x, mask_constant=0.0)[0, 1].tolist()
    [0.0, 0.0, 0.0]
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from widelab_core.layers import input_mask


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MaskedArray:
    """Values with a padding mask (NT's ``stax.MaskedArray``).

    ``apply_fn(params, x, mask_constant=c)`` returns one: ``masked_value`` is the
    network's output and ``mask`` is ``True`` at padded positions, with shape
    ``masked_value.shape[:-1] + (1,)`` (one flag per position, broadcastable against the
    values). It may also be passed back to an ``apply_fn`` as its input.

    Attributes:
        masked_value: the array (or list of arrays, one per branch).
        mask: boolean array(s), ``True`` where the entry is padding.
    """

    masked_value: Any
    mask: Any


def _per_position(mask, x):
    """A mask broadcastable to ``x`` reduced to widelab's ``x.shape[:-1] + (1,)``."""
    if mask is None:
        return None
    m = jnp.broadcast_to(jnp.asarray(mask, bool), jnp.shape(x))
    return jnp.all(m, axis=-1, keepdims=True)


def split(inputs, mask_constant) -> tuple[Any, Any]:
    """``(values, per-position mask)`` of plain or :class:`MaskedArray` inputs; a
    ``MaskedArray``'s own mask wins over ``mask_constant``."""
    if isinstance(inputs, list):
        parts = [split(x, mask_constant) for x in inputs]
        masks = [m for _, m in parts]
        return [x for x, _ in parts], None if all(m is None for m in masks) else masks
    if isinstance(inputs, MaskedArray):
        return inputs.masked_value, _per_position(inputs.mask, inputs.masked_value)
    return inputs, input_mask(inputs, mask_constant)


def join(y, mask):
    """Outputs and their mask as :class:`MaskedArray` (plain outputs when unmasked)."""
    if isinstance(y, list):
        masks = mask if isinstance(mask, list) else [mask] * len(y)
        return [join(yi, mi) for yi, mi in zip(y, masks)]
    return y if mask is None else MaskedArray(y, mask)


def is_masked(inputs) -> bool:
    """Whether ``inputs`` (or one of its branches) is a :class:`MaskedArray`."""
    if isinstance(inputs, list):
        return any(is_masked(x) for x in inputs)
    return isinstance(inputs, MaskedArray)


def unmask_fn(fn: Callable) -> Callable:
    """Make a function returning :class:`MaskedArray` values return plain arrays with the
    padded entries set to zero (NT's ``stax.unmask_fn``).

    Args:
        fn: typically an ``apply_fn`` called with ``mask_constant``.

    Returns:
        A function with ``fn``'s signature whose outputs hold no ``MaskedArray``;
        other outputs are returned unchanged.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_kernels.nt import stax
        >>> f = stax.unmask_fn(lambda: stax.MaskedArray(jnp.ones((1, 2, 2)),
        ...                                          jnp.array([[[False], [True]]])))
        >>> f().tolist()
        [[[1.0, 1.0], [0.0, 0.0]]]
    """

    def unmask(x):
        if isinstance(x, MaskedArray):
            v = jnp.asarray(x.masked_value)
            return jnp.where(x.mask, jnp.zeros((), v.dtype), v)
        return x

    @functools.wraps(fn)
    def fn_no_mask(*args, **kwargs):
        out = fn(*args, **kwargs)
        return jax.tree_util.tree_map(unmask, out, is_leaf=lambda x: isinstance(x, MaskedArray))

    return fn_no_mask
