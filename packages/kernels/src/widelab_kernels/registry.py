"""Registry of analytic kernel rules, keyed by layer class.

A rule maps the kernel of a layer's input to the kernel of its output::

    def rule(layer, k: Kernel | list[Kernel], ctx: RuleContext) -> Kernel | list[Kernel]

Multi-branch layers (``FanOut``, ``parallel``, ``FanIn*``) take and return lists.
Users add rules for their own layer types with :func:`register_rule`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from widelab_core.layers import Layer

Rule = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class RuleContext:
    """What a rule may need besides the layer and its input kernel.

    Attributes:
        compute_ntk: whether NTKs are being computed (``k.ntk`` is ``None`` otherwise).
        where: position of the layer in the network (for error messages).
    """

    compute_ntk: bool = True
    where: str = ""

    def at(self, position: str) -> RuleContext:
        """The context one level further in (``position`` appended to ``where``)."""
        where = f"{self.where}/{position}" if self.where else position
        return dataclasses.replace(self, where=where)


@dataclasses.dataclass(frozen=True)
class _Entry:
    rule: Rule
    needs_full_spatial: bool | Callable[[Any], bool]


_RULES: dict[type, _Entry] = {}


class KernelError(ValueError):
    """A network has no analytic kernel for the given inputs.

    The message names the layer, its position in the network and the cause.
    """

    def __init__(self, layer: Layer | str, detail: str, where: str = ""):
        name = layer if isinstance(layer, str) else layer.describe()
        loc = f" at {where}" if where else ""
        super().__init__(f"{name}{loc}: {detail}")


def register_rule(
    layer_cls: type,
    rule: Rule,
    *,
    needs_full_spatial: bool | Callable[[Any], bool] = False,
) -> None:
    """Register the analytic kernel rule of a layer class.

    Args:
        layer_cls: a subclass of ``widelab_core.layers.Layer``. Subclasses without a
            rule of their own use the nearest registered base class's rule.
        rule: ``rule(layer, kernel, ctx) -> kernel`` (see module docstring).
        needs_full_spatial: whether the layer needs covariances between all pairs of
            spatial positions (pooling, attention); a callable gets the layer value
            (combinators use it to ask their children).

    Raises:
        TypeError: ``layer_cls`` is not a class or ``rule`` is not callable.

    Example:
        >>> import dataclasses
        >>> from widelab_core import layers as L
        >>> from widelab_kernels import register_rule
        >>> @dataclasses.dataclass(frozen=True)
        ... class Scale(L.Identity):
        ...     c: float = 2.0
        >>> def scale_rule(layer, k, ctx):
        ...     ntk = None if k.ntk is None else layer.c**2 * k.ntk
        ...     return k.replace(nngp=layer.c**2 * k.nngp, ntk=ntk,
        ...                      cov1=layer.c**2 * k.cov1,
        ...                      cov2=None if k.cov2 is None else layer.c**2 * k.cov2)
        >>> register_rule(Scale, scale_rule)
    """
    if not isinstance(layer_cls, type):
        raise TypeError(f"register_rule: layer_cls must be a class, got {layer_cls!r}")
    if not callable(rule):
        raise TypeError(f"register_rule: rule for {layer_cls.__name__} is not callable")
    _RULES[layer_cls] = _Entry(rule, needs_full_spatial)


def _entry(layer: Any, where: str = "") -> _Entry:
    for cls in type(layer).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    raise KernelError(
        layer if isinstance(layer, Layer) else repr(layer),
        f"no kernel rule is registered for layer type {type(layer).__name__}; "
        "add one with widelab_kernels.register_rule",
        where,
    )


def get_rule(layer: Any, where: str = "") -> Rule:
    """The registered rule for ``layer``'s class (nearest base class wins).

    Raises:
        KernelError: no rule is registered for the layer's class or its bases.
    """
    return _entry(layer, where).rule


def needs_full_spatial(layer: Any) -> bool:
    """Whether ``layer`` (or any layer inside it) needs all-pairs spatial covariances."""
    need = _entry(layer).needs_full_spatial
    return bool(need(layer)) if callable(need) else bool(need)


def apply_rule(layer: Any, k: Any, ctx: RuleContext) -> Any:
    """Apply ``layer``'s registered rule to kernel(s) ``k``."""
    return get_rule(layer, ctx.where)(layer, k, ctx)
