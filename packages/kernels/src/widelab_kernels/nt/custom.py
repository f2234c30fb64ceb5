"""Hand-written layers in Neural Tangents' style: ``@stax.layer`` and ``@stax.requires``.

NT users write a layer as a function returning ``(init_fn, apply_fn, kernel_fn)``, where
``kernel_fn`` maps the input :class:`~widelab_kernels.Kernel` to the output one
(``k.nngp``, ``k.ntk``, ``k.cov1``, ``k.cov2``, ``k.replace(...)``, in NT's axis order),
and decorate it with ``@stax.layer``; ``@stax.requires(diagonal_spatial=...)`` on the
``kernel_fn`` states what input layout it can work with (Novak et al. 2020, "Neural
Tangents: fast and easy infinite neural networks in Python", Sec. 3). Here the triple
becomes a widelab layer value, :class:`HandWritten`, whose registered kernel rule calls
the user's ``kernel_fn`` (with the kernel reordered to NT's axis order and back), so it
composes with every other layer, in ``nt.stax`` and in ``widelab_core.layers``.

Example:
    >>> import jax.numpy as jnp
    >>> from widelab_kernels.nt import stax
    >>> @stax.layer
    ... def Double():
    ...     init_fn = lambda rng, input_shape: (input_shape, ())
    ...     apply_fn = lambda params, x, **kwargs: 2.0 * x
    ...     @stax.requires(diagonal_spatial=stax.Diagonal())
    ...     def kernel_fn(k):
    ...         ntk = None if k.ntk is None else 4.0 * k.ntk
    ...         cov2 = None if k.cov2 is None else 4.0 * k.cov2
    ...         return k.replace(nngp=4.0 * k.nngp, ntk=ntk, cov1=4.0 * k.cov1, cov2=cov2)
    ...     return init_fn, apply_fn, kernel_fn
    >>> _, _, kernel_fn = stax.serial(stax.Dense(8), Double())
    >>> float(kernel_fn(jnp.ones((1, 2)), None, "nngp")[0, 0])
    4.0
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from widelab_core.layers import Layer

from ..kernel import Kernel
from ..registry import RuleContext, register_rule
from ._layer import StaxLayer, to_nt_layout

_REQUIREMENTS = "_nt_requirements"
_KEYS = ("diagonal_batch", "diagonal_spatial", "batch_axis", "channel_axis", "use_dropout")


class Bool(enum.IntEnum):
    """Three-valued logic of NT's layout requirements (NT's ``stax.Bool``)."""

    NO = 0
    MAYBE = 1
    YES = 2

    def __and__(self, other: Bool) -> Bool:  # type: ignore[override]
        return Bool(min(int(self), int(other)))

    __rand__ = __and__


@dataclasses.dataclass(frozen=True)
class Diagonal:
    """Whether a layer accepts kernels holding only same-position entries (NT's
    ``stax.Diagonal``).

    Attributes:
        input: ``Bool.YES`` if the layer's ``kernel_fn`` works from per-position
            (diagonal) input covariances.
        output: whether the layer's output covariances are diagonal regardless.
    """

    input: Bool = Bool.YES
    output: Bool = Bool.NO


def requires(**static_reqs: Any) -> Callable[[Callable], Callable]:
    """Declare what input kernel layout a ``kernel_fn`` needs (NT's ``stax.requires``).

    Args:
        **static_reqs: ``diagonal_spatial`` (``False`` or ``Diagonal(input=Bool.NO)``:
            needs covariances between all pairs of positions; ``True`` or ``Diagonal()``:
            per-position ones suffice; absent: whatever the rest of the network needs), ``diagonal_batch`` (only ``True``: widelab's rules always
            carry per-example covariances), ``batch_axis`` (only 0), ``channel_axis``
            (only -1) and ``use_dropout`` (only ``False``).

    Returns:
        A decorator returning the ``kernel_fn`` with its requirements attached.

    Raises:
        TypeError: an unknown requirement name.
        NotImplementedError: a requirement value widelab's layouts cannot meet.

    Example:
        >>> from widelab_kernels.nt import stax
        >>> from widelab_kernels.nt.custom import get_requirements
        >>> @stax.requires(diagonal_spatial=stax.Diagonal())
        ... def kernel_fn(k):
        ...     return k
        >>> get_requirements(kernel_fn)["diagonal_spatial"]
        Diagonal(input=<Bool.YES: 2>, output=<Bool.NO: 0>)
    """
    bad = sorted(set(static_reqs) - set(_KEYS))
    if bad:
        raise TypeError(f"requires: unknown requirement(s) {bad}; known: {list(_KEYS)}")
    fixed = {"diagonal_batch": True, "batch_axis": 0, "channel_axis": -1, "use_dropout": False}
    for key, value in static_reqs.items():
        if key in fixed and value is not None and value != fixed[key]:
            raise NotImplementedError(
                f"requires: {key}={value!r} is not supported by hand-written layers; "
                f"widelab's kernels have {key}={fixed[key]!r}"
            )

    def decorate(kernel_fn: Callable) -> Callable:
        @functools.wraps(kernel_fn)
        def with_requirements(k, **kwargs):
            return kernel_fn(k, **kwargs)

        setattr(with_requirements, _REQUIREMENTS, dict(static_reqs))
        return with_requirements

    return decorate


def get_requirements(kernel_fn: Callable) -> dict:
    """The requirements :func:`requires` attached to ``kernel_fn`` (``{}`` if none)."""
    return dict(getattr(kernel_fn, _REQUIREMENTS, {}))


def _accepts_diagonal(kernel_fn: Callable) -> bool:
    """As in NT, a ``kernel_fn`` without a ``diagonal_spatial`` requirement takes the
    layout the rest of the network needs; ``False`` or ``Diagonal(input=Bool.NO)``
    asks for covariances between all pairs of positions."""
    req = get_requirements(kernel_fn).get("diagonal_spatial")
    if req is None:
        return True
    if isinstance(req, Diagonal):
        return req.input != Bool.NO
    return bool(req)


@dataclasses.dataclass(frozen=True)
class HandWritten(Layer):
    """A layer given by NT's ``(init_fn, apply_fn, kernel_fn)`` functions.

    Attributes:
        init_fn: ``init_fn(rng, input_shape) -> (output_shape, params)``.
        apply_fn: ``apply_fn(params, inputs, **kwargs)`` (``rng=`` for stochastic layers).
        nt_kernel_fn: ``kernel_fn(kernel) -> kernel`` in NT's axis order.
        name: the name shown in messages.
    """

    init_fn: Callable
    apply_fn: Callable
    nt_kernel_fn: Callable
    name: str = "layer"

    def init(self, key, input_shape):
        out_shape, params = self.init_fn(key, input_shape)
        if isinstance(out_shape, list):
            return [tuple(s) for s in out_shape], params
        return tuple(out_shape), params

    def apply_masked(self, params, x, mask, key):
        kwargs = {} if key is None else {"rng": key}
        y = self.apply_fn(params, x, **kwargs)
        same = mask is not None and not isinstance(y, list) and jnp.shape(y)[:-1] == mask.shape[:-1]
        return y, mask if same else None

    def describe(self) -> str:
        return f"{self.name}()"


def _from_nt_layout(k: Kernel) -> Kernel:
    """Inverse of ``to_nt_layout``: NT's interleaved axes back to widelab's."""
    d = k.n_spatial
    if k.diagonal_spatial or d == 0:
        return k

    def unzip(a, lead: int):
        if a is None:
            return a
        perm = list(range(lead)) + [lead + 2 * i for i in range(d)]
        perm += [lead + 2 * i + 1 for i in range(d)]
        return jnp.transpose(a, perm)

    return k.replace(
        nngp=unzip(k.nngp, 2), ntk=unzip(k.ntk, 2), cov1=unzip(k.cov1, 1), cov2=unzip(k.cov2, 1)
    )


def _shape(layer: HandWritten, k) -> Any:
    def shapes(attr):
        return [getattr(ki, attr) for ki in k] if isinstance(k, list) else getattr(k, attr)

    return layer.output_shape(shapes("shape1")), layer.output_shape(shapes("shape2"))


def _hand_written_rule(layer: HandWritten, k, ctx: RuleContext):
    shape1, shape2 = _shape(layer, k)
    k_nt = [to_nt_layout(ki) for ki in k] if isinstance(k, list) else to_nt_layout(k)
    out = layer.nt_kernel_fn(k_nt)
    if not isinstance(out, Kernel):
        raise TypeError(
            f"{ctx.where or layer.describe()}: the layer's kernel_fn must return a Kernel "
            f"(e.g. k.replace(nngp=...)), got {type(out).__name__}"
        )
    return _from_nt_layout(out.replace(shape1=tuple(shape1), shape2=tuple(shape2)))


register_rule(
    HandWritten,
    _hand_written_rule,
    needs_full_spatial=lambda layer: not _accepts_diagonal(layer.nt_kernel_fn),
)


def from_triple(triple, name: str = "layer") -> HandWritten:
    """A :class:`HandWritten` layer from NT's ``(init_fn, apply_fn, kernel_fn)``."""
    init_fn, apply_fn, kernel_fn = triple
    return HandWritten(init_fn, apply_fn, kernel_fn, name)


def layer(layer_fn: Callable) -> Callable[..., StaxLayer]:
    """Turn a function returning ``(init_fn, apply_fn, kernel_fn)`` into a layer
    constructor (NT's ``stax.layer``).

    Args:
        layer_fn: called with the constructor's arguments; returns NT's triple (or an
            ``nt.stax`` layer, e.g. a ``stax.serial`` block, which is returned as is).

    Returns:
        A constructor whose values are ``nt.stax`` layers: they unpack to
        ``(init_fn, apply_fn, kernel_fn)`` and compose with every other layer.

    Raises:
        TypeError: ``layer_fn`` does not return three functions.
    """

    @functools.wraps(layer_fn)
    def construct(*args, **kwargs) -> StaxLayer:
        out = layer_fn(*args, **kwargs)
        if isinstance(out, StaxLayer):
            return out
        if not (isinstance(out, tuple) and len(out) == 3 and all(callable(f) for f in out)):
            raise TypeError(
                f"layer: {layer_fn.__name__} must return (init_fn, apply_fn, kernel_fn), "
                f"got {type(out).__name__}"
            )
        return StaxLayer(from_triple(out, layer_fn.__name__))

    return construct


__all__ = ["Bool", "Diagonal", "HandWritten", "get_requirements", "layer", "requires"]
