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
        pattern: ``(pattern1, pattern2)``, the graphs of the ``x1`` and ``x2`` examples
            for ``Aggregate`` layers, or ``None`` (no graph given).
    """

    compute_ntk: bool = True
    where: str = ""
    pattern: Any = None

    def at(self, position: str) -> RuleContext:
        """The context one level further in (``position`` appended to ``where``)."""
        where = f"{self.where}/{position}" if self.where else position
        return dataclasses.replace(self, where=where)


@dataclasses.dataclass(frozen=True)
class _Entry:
    rule: Rule
    needs_full_spatial: bool | Callable[[Any], bool]
    subclasses: bool = False


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
    subclasses: bool = False,
) -> None:
    """Register the analytic kernel rule of a layer class.

    Args:
        layer_cls: a subclass of ``widelab_core.layers.Layer``. A subclass without a
            rule of its own uses its nearest registered base class's rule only if it
            keeps that class's finite-width meaning (no new dataclass fields, no own
            ``fn``/``init``/``apply_masked``) or the rule was registered with
            ``subclasses=True``; otherwise looking up its rule is an error, so a
            subclass never silently gets a kernel that is not its own.
        rule: ``rule(layer, kernel, ctx) -> kernel`` (see module docstring).
        needs_full_spatial: whether the layer needs covariances between all pairs of
            spatial positions (pooling, attention); a callable gets the layer value
            (combinators use it to ask their children).
        subclasses: the rule reads everything it needs from the layer value (e.g.
            quadrature of ``layer.fn``), so it is right for every subclass too.

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
    _RULES[layer_cls] = _Entry(rule, needs_full_spatial, bool(subclasses))


#: Methods that define a layer's finite-width meaning; a subclass overriding one of them
#: is a different function and needs its own kernel rule.
MEANING_METHODS = ("fn", "init", "apply_masked")


def _changes_meaning(cls: type, base: type) -> str | None:
    """Why ``cls`` (a subclass of ``base``) means something else, or ``None``."""
    for c in cls.__mro__:
        if c is base:
            break
        own = [m for m in MEANING_METHODS if m in vars(c)]
        if own:
            return f"{c.__name__} defines its own {', '.join(own)}"
    if dataclasses.is_dataclass(cls):
        base_fields = (
            {f.name for f in dataclasses.fields(base)} if dataclasses.is_dataclass(base) else set()
        )
        extra = [f.name for f in dataclasses.fields(cls) if f.name not in base_fields]
        if extra:
            return f"it adds the field(s) {', '.join(extra)}"
    return None


def _entry(layer: Any, where: str = "") -> _Entry:
    cls = type(layer)
    for base in cls.__mro__:
        if base not in _RULES:
            continue
        entry = _RULES[base]
        if base is cls or entry.subclasses:
            return entry
        why = _changes_meaning(cls, base)
        if why is None:
            return entry
        raise KernelError(
            layer if isinstance(layer, Layer) else repr(layer),
            f"{cls.__name__} is a subclass of {base.__name__} but {why}, so "
            f"{base.__name__}'s kernel rule does not describe it; register a rule for "
            f"{cls.__name__} with widelab_kernels.register_rule",
            where,
        )
    raise KernelError(
        layer if isinstance(layer, Layer) else repr(layer),
        f"no kernel rule is registered for layer type {type(layer).__name__}; "
        "add one with widelab_kernels.register_rule",
        where,
    )


def get_rule(layer: Any, where: str = "") -> Rule:
    """The registered rule for ``layer``'s class (see :func:`register_rule` for when a
    base class's rule applies).

    Raises:
        KernelError: no rule is registered for the layer's class or its bases, or the
            nearest registered base's rule does not describe the subclass.
    """
    return _entry(layer, where).rule


def needs_full_spatial(layer: Any) -> bool:
    """Whether ``layer`` (or any layer inside it) needs all-pairs spatial covariances."""
    need = _entry(layer).needs_full_spatial
    return bool(need(layer)) if callable(need) else bool(need)


def apply_rule(layer: Any, k: Any, ctx: RuleContext) -> Any:
    """Apply ``layer``'s registered rule to kernel(s) ``k``."""
    return get_rule(layer, ctx.where)(layer, k, ctx)
