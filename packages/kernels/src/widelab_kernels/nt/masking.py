"""Neural Tangents' ``stax.supports_masking``: hand-written layers that take padding masks.

NT users write a masking layer as a function returning ``(init_fn, apply_fn, kernel_fn)``
or ``(init_fn, apply_fn, kernel_fn, mask_fn)``, where ``apply_fn(params, x, mask=None,
**kwargs)`` receives the padding mask of its input and ``mask_fn(mask, input_shape)``
gives the mask of its output (the identity when absent), and decorate it with
``@stax.layer`` over ``@stax.supports_masking(remask_kernel=...)``. Here that becomes a
:class:`MaskedHandWritten` layer value: its ``apply`` zeroes padded inputs and passes the
mask on, its kernel rule runs the user's ``kernel_fn`` and gives the output kernel the
masks ``mask_fn`` computes; with ``remask_kernel=True`` the covariances of padded output
positions are zeroed (Novak et al. 2020, "Neural Tangents", masking of variable-length
inputs). Masks are per position, shaped ``(batch, *spatial, 1)`` in ``apply_fn`` and
``mask_fn``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from widelab_kernels.nt import stax
    >>> @stax.layer
    ... @stax.supports_masking(remask_kernel=True)
    ... def Halve():
    ...     init_fn = lambda rng, input_shape: (input_shape, ())
    ...     apply_fn = lambda params, x, mask=None, **kwargs: x / 2
    ...     def kernel_fn(k, **kwargs):
    ...         q = lambda a: None if a is None else a / 4
    ...         return k.replace(nngp=q(k.nngp), ntk=q(k.ntk), cov1=q(k.cov1), cov2=q(k.cov2))
    ...     return init_fn, apply_fn, kernel_fn
    >>> _, _, kernel_fn = stax.serial(stax.Dense(4), Halve(), stax.GlobalAvgPool())
    >>> x = jnp.array([[[1.0], [2.0]], [[1.0], [0.0]]])
    >>> kernel_fn(x, None, "nngp", mask_constant=0.0).round(4).tolist()
    [[0.5625, 0.375], [0.375, 0.25]]
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax.numpy as jnp
from widelab_core.layers import zero_masked

from ..kernel import Kernel
from ..registry import RuleContext, register_rule
from ..rules.spatial import zero_padding_positions
from ._layer import StaxLayer
from ._masked_array import MaskedArray, unmask_fn
from .custom import HandWritten, _accepts_diagonal, _hand_written_rule


def _tree_map(f, *trees):
    if isinstance(trees[0], list):
        return [f(*items) for items in zip(*trees)]
    return f(*trees)


def _per_position(mask, shape):
    """A mask broadcastable to ``shape`` reduced to ``shape[:-1] + (1,)``."""
    if mask is None:
        return None
    m = jnp.broadcast_to(jnp.asarray(mask, bool), tuple(shape))
    return jnp.all(m, axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class MaskedHandWritten(HandWritten):
    """A hand-written NT layer that takes padding masks (see the module docstring).

    Attributes:
        mask_fn: ``mask_fn(mask, input_shape) -> output mask``, or ``None`` (unchanged).
        remask_kernel: zero the covariances of padded output positions.
    """

    mask_fn: Callable | None = None
    remask_kernel: bool = False

    def _out_mask(self, mask, in_shape, out_shape):
        if mask is None:
            return None
        out = mask if self.mask_fn is None else self.mask_fn(mask, in_shape)
        return _tree_map(_per_position, out, out_shape)

    def apply_masked(self, params, x, mask, key):
        kwargs = {} if key is None else {"rng": key}
        if mask is not None:
            x = _tree_map(zero_masked, x, mask)
        y = self.apply_fn(params, x, mask=mask, **kwargs)
        shape = _tree_map(lambda a: tuple(jnp.shape(a)), x)
        out_shape = _tree_map(lambda a: tuple(jnp.shape(a)), y)
        return y, self._out_mask(mask, shape, out_shape)


def _kernel_mask(layer: MaskedHandWritten, mask, in_shape, out_shape):
    """Kernel masks ``(n, *S)`` through the layer's ``mask_fn``."""
    if mask is None or (isinstance(mask, list) and all(m is None for m in mask)):
        return None
    full = _tree_map(lambda m: m[..., None], mask)
    out = layer._out_mask(full, in_shape, out_shape)
    return _tree_map(lambda m: m[..., 0], out)


def _field(k, name: str):
    return [getattr(ki, name) for ki in k] if isinstance(k, list) else getattr(k, name)


def _masked_rule(layer: MaskedHandWritten, k, ctx: RuleContext):
    out = _hand_written_rule(layer, k, ctx)
    m1 = _kernel_mask(layer, _field(k, "mask1"), _field(k, "shape1"), _field(out, "shape1"))
    m2 = _kernel_mask(layer, _field(k, "mask2"), _field(k, "shape2"), _field(out, "shape2"))
    if isinstance(out, Kernel):
        out = out.replace(mask1=m1, mask2=m2)
        if layer.remask_kernel:
            out = zero_padding_positions(out)
    return out


register_rule(
    MaskedHandWritten,
    _masked_rule,
    needs_full_spatial=lambda layer: not _accepts_diagonal(layer.nt_kernel_fn),
)


def supports_masking(remask_kernel: bool) -> Callable[[Callable], Callable[..., StaxLayer]]:
    """Make a hand-written layer take padding masks (NT's ``stax.supports_masking``).

    Args:
        remask_kernel: ``True`` to zero the kernel's covariances of padded output
            positions after the layer's ``kernel_fn``.

    Returns:
        A decorator for a function returning ``(init_fn, apply_fn, kernel_fn)`` or
        ``(init_fn, apply_fn, kernel_fn, mask_fn)``; the decorated function returns an
        ``nt.stax`` layer (it may be decorated with ``stax.layer`` too, as in NT).

    Raises:
        ValueError: the function returns neither 3 nor 4 functions.
    """

    def decorate(layer_fn: Callable) -> Callable[..., StaxLayer]:
        @functools.wraps(layer_fn)
        def construct(*args, **kwargs) -> StaxLayer:
            fns = layer_fn(*args, **kwargs)
            if not (isinstance(fns, tuple) and len(fns) in (3, 4)):
                raise ValueError(
                    f"supports_masking: {layer_fn.__name__} must return (init_fn, apply_fn, "
                    f"kernel_fn) or (init_fn, apply_fn, kernel_fn, mask_fn), got "
                    f"{type(fns).__name__} of length {len(fns) if isinstance(fns, tuple) else '-'}"
                )
            mask_fn = fns[3] if len(fns) == 4 else None
            return StaxLayer(
                MaskedHandWritten(
                    fns[0], fns[1], fns[2], layer_fn.__name__, mask_fn, bool(remask_kernel)
                )
            )

        return construct

    return decorate


__all__ = ["MaskedArray", "MaskedHandWritten", "supports_masking", "unmask_fn"]
