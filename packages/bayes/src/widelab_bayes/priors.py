"""Which prior each layer's raw parameters have: a registry keyed on the layer class.

A Bayesian network here puts a Gaussian prior on every raw parameter. What that prior
is depends on the layer: an NTK-parameterised ``Dense`` or ``Conv`` has raw weights and
biases ``N(0, 1)`` (``W_std / sqrt(fan_in)`` and ``b_std`` multiply them in the forward
pass), a standard-parameterised one has raw weights ``N(0, W_std^2 / fan_in)``, and an
activation or pooling layer has no parameters at all. A rule maps a layer to one of

* ``"ntk"``: every raw parameter of the layer is ``N(0, 1)``;
* ``"standard"``: raw weights ``N(0, W_std^2 / fan_in)``, raw biases ``N(0, b_std^2)``;
* ``"none"``: the layer has no parameters of its own (combinators are walked into).

The nearest registered base class wins. A layer whose class has no rule is an error,
never a silent default: register one with :func:`register_prior`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import jax
from widelab_core import layers as L
from widelab_core.layers.dense import weight_scale

PriorKind = Literal["ntk", "standard", "none"]
PriorRule = Callable[[L.Layer], PriorKind]

_PRIORS: dict[type, PriorRule] = {}


class PriorError(ValueError):
    """A layer whose prior is unknown (no rule registered for its class)."""


def register_prior(layer_cls: type, rule: PriorRule) -> None:
    """Register how the raw parameters of ``layer_cls`` (and its subclasses) are distributed.

    Args:
        layer_cls: a layer class.
        rule: ``layer -> "ntk" | "standard" | "none"`` (see the module docstring).

    Raises:
        TypeError: ``layer_cls`` is not a class or ``rule`` is not callable.

    Example:
        >>> from widelab_core import layers as L
        >>> register_prior(L.Identity, lambda layer: "none")
        >>> prior_kind(L.Identity())
        'none'
    """
    if not isinstance(layer_cls, type):
        raise TypeError(f"register_prior: layer_cls must be a class, got {layer_cls!r}")
    if not callable(rule):
        raise TypeError(f"register_prior: rule for {layer_cls.__name__} is not callable")
    _PRIORS[layer_cls] = rule


def prior_kind(layer: L.Layer, where: str = "net") -> PriorKind:
    """The prior of ``layer``'s own raw parameters (not its sublayers').

    Args:
        layer: a layer value.
        where: its position in the network, for the error message.

    Returns:
        ``"ntk"``, ``"standard"`` or ``"none"``.

    Raises:
        PriorError: no rule is registered for the layer's class or any base class.
    """
    for cls in type(layer).__mro__:
        if cls in _PRIORS:
            return _PRIORS[cls](layer)
    name = layer.describe() if isinstance(layer, L.Layer) else repr(layer)
    raise PriorError(
        f"{name} at {where}: no prior is registered for layer type {type(layer).__name__}; "
        "add one with widelab_bayes.register_prior"
    )


def sublayers(layer: L.Layer) -> list[L.Layer]:
    """The layers a combinator holds (fields that are layers or tuples of layers)."""
    out = []
    for f in dataclasses.fields(layer):
        v = getattr(layer, f.name)
        if isinstance(v, L.Layer):
            out.append(v)
        elif isinstance(v, tuple) and v and all(isinstance(u, L.Layer) for u in v):
            out.extend(v)
    return out


def walk_priors(layer: L.Layer, where: str = "net") -> list[tuple[str, L.Layer, PriorKind]]:
    """``(position, layer, kind)`` for ``layer`` and every layer inside it, depth first.

    Raises:
        PriorError: some layer has no registered prior.
    """
    out = [(where, layer, prior_kind(layer, where))]
    for i, sub in enumerate(sublayers(layer)):
        out.extend(walk_priors(sub, f"{where}/{i}"))
    return out


def effective_weights(layer: L.Layer, params) -> jax.Array:
    """The weights a ``Dense``/``Conv`` layer actually multiplies its input by.

    NTK-parameterised raw weights are scaled by ``W_std / sqrt(fan_in)`` (core's own
    weight-scale helper); standard-parameterised ones are used as they are.

    Raises:
        PriorError: the layer has no registered prior, or it has no weights.
    """
    kind = prior_kind(layer)
    if kind == "none" or not isinstance(params, dict) or "W" not in params:
        raise PriorError(f"{layer.describe()} has no weights to scale")
    w = params["W"]
    fan_in = 1
    for d in w.shape[:-1]:
        fan_in *= int(d)
    return w * weight_scale(getattr(layer, "W_std", 1.0), fan_in, kind)


def _parameterization(layer) -> PriorKind:
    return layer.parameterization


def _no_params(layer) -> PriorKind:
    return "none"


for _cls in (L.Dense, L.Conv):
    register_prior(_cls, _parameterization)
register_prior(L.GlobalSelfAttention, lambda layer: "ntk")
for _cls in (
    L.ElementwiseLayer,
    L.Serial,
    L.Parallel,
    L.Repeat,
    L.FanOut,
    L.FanInSum,
    L.FanInProd,
    L.FanInConcat,
    L.Flatten,
    L.Identity,
    L.AvgPool,
    L.SumPool,
    L.GlobalAvgPool,
    L.GlobalSumPool,
    L.LayerNorm,
    L.Dropout,
):
    register_prior(_cls, _no_params)
