"""Neural Tangents 0.6.5's ``stax`` names over widelab layers.

Every constructor returns a :class:`StaxLayer`: a widelab layer value that unpacks to
NT's ``(init_fn, apply_fn, kernel_fn)``. Arguments keep NT's names, defaults and
meanings; where NT's meaning differs from widelab's the translation is done here
(``Dropout(rate)`` is NT's *keep* probability, widelab's layer takes the drop
probability). An argument widelab's layer does not have is accepted at NT's default
value and refused with a clear error otherwise.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from widelab_kernels.nt import stax
    >>> init_fn, apply_fn, kernel_fn = stax.serial(
    ...     stax.Dense(64, W_std=1.5, b_std=0.05), stax.Relu(), stax.Dense(1))
    >>> x = jnp.ones((3, 4))
    >>> kernel_fn(x, None, "ntk").shape
    (3, 3)
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from typing import Any

from widelab_core import layers as L

from ._aggregate import Aggregate
from ._dot_general import DotGeneral
from ._layer import StaxLayer, unwrap
from .custom import Bool, Diagonal, layer, requires
from .masking import MaskedArray, supports_masking, unmask_fn


class Padding(enum.Enum):
    """Convolution/pooling padding (NT's ``stax.Padding``)."""

    CIRCULAR = "CIRCULAR"
    SAME = "SAME"
    VALID = "VALID"


class AttentionMechanism(enum.Enum):
    """Attention logit-to-weight maps (NT's ``stax.AttentionMechanism``)."""

    SOFTMAX = "SOFTMAX"
    IDENTITY = "IDENTITY"
    ABS = "ABS"
    RELU = "RELU"


class PositionalEmbedding(enum.Enum):
    """Positional embedding kinds of attention (NT's ``stax.PositionalEmbedding``)."""

    NONE = "NONE"
    SUM = "SUM"
    CONCAT = "CONCAT"


class AggregateImplementation(enum.Enum):
    """Graph aggregation implementations (NT's ``stax.AggregateImplementation``)."""

    DENSE = "DENSE"
    SPARSE = "SPARSE"


def _value(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


def _make(cls: type, name: str, nt_defaults: dict, /, **kwargs) -> StaxLayer:
    """``cls(**kwargs)`` wrapped; keywords ``cls`` lacks must equal NT's defaults."""
    fields = {f.name for f in dataclasses.fields(cls)}
    passed = {}
    for k, v in kwargs.items():
        v = _value(v)
        if k in fields:
            passed[k] = v
        elif k in nt_defaults and _same(v, nt_defaults[k]):
            continue
        else:
            raise NotImplementedError(
                f"stax.{name}: {k}={v!r} is not supported (only {nt_defaults.get(k)!r})"
            )
    return StaxLayer(cls(**passed))


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return a is b


_AXES = {"batch_axis": 0, "channel_axis": -1}


# Linear layers --------------------------------------------------------------------
def Dense(
    out_dim: int,
    W_std: float = 1.0,
    b_std: float | None = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
) -> StaxLayer:
    """Fully connected layer (NT's ``stax.Dense``); see ``widelab_core.layers.Dense``."""
    return _make(
        L.Dense,
        "Dense",
        {**_AXES, "s": (1, 1)},
        out_dim=out_dim,
        W_std=W_std,
        b_std=b_std,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
        parameterization=parameterization,
        s=tuple(s),
    )


def _conv_like(cls, name, out_chan, filter_shape, strides, padding, W_std, b_std, dn, param, s):
    if dn is not None and not _channels_last(dn):
        raise NotImplementedError(
            f"stax.{name}: dimension_numbers={dn!r} is not supported; widelab layers take "
            "channels-last inputs (dimension_numbers=None or ('NHWC', 'HWIO', 'NHWC'))"
        )
    return _make(
        cls,
        name,
        {"s": (1, 1)},
        out_chan=out_chan,
        filter_shape=tuple(filter_shape),
        strides=None if strides is None else tuple(strides),
        padding=_value(padding),
        W_std=W_std,
        b_std=b_std,
        parameterization=param,
        s=tuple(s),
    )


def _channels_last(dn) -> bool:
    lhs, rhs, out = dn
    return lhs[0] == "N" and lhs[-1] == "C" and out == lhs and rhs[-2:] == "IO"


def _conv_variant(layer_name: str, summary: str):
    """An NT convolution constructor (NT's signature) for the core layer ``layer_name``."""

    def make(
        out_chan: int,
        filter_shape: Sequence[int],
        strides: Sequence[int] | None = None,
        padding: str = "VALID",
        W_std: float = 1.0,
        b_std: float | None = None,
        dimension_numbers: tuple[str, str, str] | None = None,
        parameterization: str = "ntk",
        s: tuple[int, int] = (1, 1),
    ) -> StaxLayer:
        args = (strides, padding, W_std, b_std, dimension_numbers, parameterization, s)
        cls = getattr(L, layer_name)
        return _conv_like(cls, layer_name, out_chan, filter_shape, *args)

    make.__name__ = make.__qualname__ = layer_name
    make.__doc__ = (
        f"{summary} (NT's ``stax.{layer_name}``); see ``widelab_core.layers.{layer_name}``."
    )
    return make


Conv = _conv_variant("Conv", "Convolution")


def _pool(cls, name, window_shape, strides, padding, **extra):
    return _make(
        cls,
        name,
        dict(_AXES),
        window_shape=tuple(window_shape),
        strides=None if strides is None else tuple(strides),
        padding=_value(padding),
        **extra,
    )


def AvgPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    normalize_edges: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> StaxLayer:
    """Average pooling (NT's ``stax.AvgPool``)."""
    return _pool(
        L.AvgPool,
        "AvgPool",
        window_shape,
        strides,
        padding,
        normalize_edges=normalize_edges,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
    )


def SumPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> StaxLayer:
    """Sum pooling (NT's ``stax.SumPool``)."""
    return _pool(
        L.SumPool,
        "SumPool",
        window_shape,
        strides,
        padding,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
    )


def GlobalAvgPool(batch_axis: int = 0, channel_axis: int = -1) -> StaxLayer:
    """Average over all spatial positions (NT's ``stax.GlobalAvgPool``)."""
    return _make(
        L.GlobalAvgPool, "GlobalAvgPool", _AXES, batch_axis=batch_axis, channel_axis=channel_axis
    )


def GlobalSumPool(batch_axis: int = 0, channel_axis: int = -1) -> StaxLayer:
    """Sum over all spatial positions (NT's ``stax.GlobalSumPool``)."""
    return _make(
        L.GlobalSumPool, "GlobalSumPool", _AXES, batch_axis=batch_axis, channel_axis=channel_axis
    )


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0) -> StaxLayer:
    """Flatten all non-batch axes (NT's ``stax.Flatten``)."""
    return _make(
        L.Flatten,
        "Flatten",
        {"batch_axis": 0, "batch_axis_out": 0},
        batch_axis=batch_axis,
        batch_axis_out=batch_axis_out,
    )


def Identity() -> StaxLayer:
    """The identity layer (NT's ``stax.Identity``)."""
    return StaxLayer(L.Identity())


def LayerNorm(
    axis: int | Sequence[int] = -1, eps: float = 1e-12, batch_axis: int = 0, channel_axis: int = -1
) -> StaxLayer:
    """Layer normalisation over ``axis`` (NT's ``stax.LayerNorm``)."""
    ax = axis if isinstance(axis, int) else tuple(axis)
    return _make(
        L.LayerNorm,
        "LayerNorm",
        _AXES,
        axis=ax,
        eps=eps,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
    )


def Dropout(rate: float, mode: str = "train") -> StaxLayer:
    """Dropout with NT's convention: ``rate`` is the probability of *keeping* an entry.

    ``apply_fn(params, x, rng=key)`` needs a key in ``"train"`` mode. The widelab layer
    inside is ``widelab_core.layers.Dropout(1 - rate, mode)`` (drop probability).

    Raises:
        ValueError: ``rate`` not in ``(0, 1]``.
    """
    if not 0.0 < float(rate) <= 1.0:
        raise ValueError(f"stax.Dropout: rate (keep probability) must be in (0, 1], got {rate}")
    return StaxLayer(L.Dropout(1.0 - float(rate), mode))


def GlobalSelfAttention(
    n_chan_out: int,
    n_chan_key: int,
    n_chan_val: int,
    n_heads: int,
    linear_scaling: bool = True,
    W_key_std: float = 1.0,
    W_value_std: float = 1.0,
    W_query_std: float = 1.0,
    W_out_std: float = 1.0,
    b_std: float | None = None,
    attention_mechanism: str = "SOFTMAX",
    pos_emb_type: str = "NONE",
    pos_emb_p_norm: float = 2,
    pos_emb_decay_fn: Callable[[float], float] | None = None,
    n_chan_pos_emb: int | None = None,
    W_pos_emb_std: float = 1.0,
    val_pos_emb: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> StaxLayer:
    """Multi-head global self-attention (NT's ``stax.GlobalSelfAttention``)."""
    return _make(
        L.GlobalSelfAttention,
        "GlobalSelfAttention",
        {**_AXES, "pos_emb_p_norm": 2, "pos_emb_decay_fn": None},
        n_chan_out=n_chan_out,
        n_chan_key=n_chan_key,
        n_chan_val=n_chan_val,
        n_heads=n_heads,
        linear_scaling=linear_scaling,
        W_key_std=W_key_std,
        W_value_std=W_value_std,
        W_query_std=W_query_std,
        W_out_std=W_out_std,
        b_std=b_std,
        attention_mechanism=attention_mechanism,
        pos_emb_type=pos_emb_type,
        pos_emb_p_norm=pos_emb_p_norm,
        pos_emb_decay_fn=pos_emb_decay_fn,
        n_chan_pos_emb=n_chan_pos_emb,
        W_pos_emb_std=W_pos_emb_std,
        val_pos_emb=val_pos_emb,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
    )


# Convolution variants, resizing and indexing ----------------------------------------
ConvTranspose = _conv_variant("ConvTranspose", "Transposed convolution")
ConvLocal = _conv_variant("ConvLocal", "Locally connected (unshared) convolution")


def ImageResize(
    shape: Sequence[int],
    method: Any,
    antialias: bool = True,
    precision: Any = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> StaxLayer:
    """``jax.image.resize`` of every axis, ``-1`` keeping an axis (NT's
    ``stax.ImageResize``); see ``widelab_core.layers.ImageResize``. ``precision=None``
    means ``jax.lax.Precision.HIGHEST`` (NT's default)."""
    if precision is None:
        precision = "highest"
    elif isinstance(precision, enum.Enum):
        precision = precision.name.lower()
    return _make(
        L.ImageResize,
        "ImageResize",
        dict(_AXES),
        shape=tuple(shape),
        method=method,
        antialias=antialias,
        precision=precision,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
    )


def Index(idx: Any, batch_axis: int = 0, channel_axis: int = -1) -> StaxLayer:
    """NumPy basic indexing ``x[idx]`` (NT's ``stax.Index``); build ``idx`` with
    :data:`Slice`, e.g. ``Index(Slice[::2, :4, :4])``."""
    return _make(
        L.Index, "Index", dict(_AXES), idx=idx, batch_axis=batch_axis, channel_axis=channel_axis
    )


class _SliceMaker:
    """``Slice[1:4, :, 0]`` returns the index ``(slice(1, 4), slice(None), 0)``."""

    def __getitem__(self, idx: Any) -> Any:
        return idx


#: Builds an index for :func:`Index` from slice syntax (NT's ``stax.Slice``).
Slice = _SliceMaker()


# Nonlinearities ------------------------------------------------------------------
def _stable(name: str, do_stabilize: bool) -> None:
    # NT's do_stabilize rescales inputs to avoid overflow in its arc-cosine formulas;
    # widelab's rules are exact without it, so both values give the same kernel.
    if not isinstance(do_stabilize, bool):
        raise TypeError(f"stax.{name}: do_stabilize must be a bool, got {do_stabilize!r}")


def Relu(do_stabilize: bool = False) -> StaxLayer:
    """ReLU (NT's ``stax.Relu``); ``do_stabilize`` is accepted and not needed."""
    _stable("Relu", do_stabilize)
    return StaxLayer(L.Relu())


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> StaxLayer:
    """Leaky ReLU (NT's ``stax.LeakyRelu``)."""
    _stable("LeakyRelu", do_stabilize)
    return StaxLayer(L.LeakyRelu(alpha))


def ABRelu(a: float, b: float, do_stabilize: bool = False) -> StaxLayer:
    """``a min(x, 0) + b max(x, 0)`` (NT's ``stax.ABRelu``)."""
    _stable("ABRelu", do_stabilize)
    return StaxLayer(L.ABRelu(a, b))


def Abs(do_stabilize: bool = False) -> StaxLayer:
    """``|x|`` (NT's ``stax.Abs``)."""
    _stable("Abs", do_stabilize)
    return StaxLayer(L.Abs())


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> StaxLayer:
    """``a erf(b x) + c`` (NT's ``stax.Erf``)."""
    return StaxLayer(L.Erf(a, b, c))


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> StaxLayer:
    """``a sin(b x + c)`` (NT's ``stax.Sin``)."""
    return StaxLayer(L.Sin(a, b, c))


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> StaxLayer:
    """``a cos(b x + c)`` (NT's ``stax.Cos``)."""
    return StaxLayer(L.Cos(a, b, c))


def Gaussian(a: float = 1, b: float = -1) -> StaxLayer:
    """``a exp(b x^2)`` (NT's ``stax.Gaussian``)."""
    return StaxLayer(L.Gaussian(a, b))


def Exp(a: float = 1, b: float = 1) -> StaxLayer:
    """``a exp(b x)`` (NT's ``stax.Exp``)."""
    return StaxLayer(L.Exp(a, b))


def Gelu(approximate: bool = False) -> StaxLayer:
    """GELU (NT's ``stax.Gelu``)."""
    return StaxLayer(L.Gelu(approximate))


def Sign() -> StaxLayer:
    """``sign(x)`` (NT's ``stax.Sign``)."""
    return StaxLayer(L.Sign())


def Sigmoid_like() -> StaxLayer:
    """The erf-based sigmoid of NT's ``stax.Sigmoid_like``."""
    return StaxLayer(L.Sigmoid_like())


def Elementwise(
    fn: Callable[[float], float] | None = None,
    nngp_fn: Callable[[float, float, float], float] | None = None,
    d_nngp_fn: Callable[[float, float, float], float] | None = None,
) -> StaxLayer:
    """A nonlinearity given by ``fn`` and, optionally, its closed-form NNGP map
    ``nngp_fn(cov12, var1, var2)`` and derivative ``d_nngp_fn`` (NT's
    ``stax.Elementwise``)."""
    return StaxLayer(L.Elementwise(fn, nngp_fn, d_nngp_fn))


def ElementwiseNumerical(
    fn: Callable[[float], float], deg: int, df: Callable[[float], float] | None = None
) -> StaxLayer:
    """A nonlinearity whose kernel is computed by Gauss-Hermite quadrature of degree
    ``deg`` (NT's ``stax.ElementwiseNumerical``; ``df`` is not needed: derivatives come
    from ``jax.grad``)."""
    return StaxLayer(L.ElementwiseNumerical(fn, deg))


def ExpNormalized(gamma: float = 1, shift: float = -1, do_clip: bool = False) -> StaxLayer:
    """NT's ``stax.ExpNormalized`` (kernel only, as in NT)."""
    return StaxLayer(L.ExpNormalized(gamma, shift, do_clip))


def Gabor() -> StaxLayer:
    """``sin(x) exp(-x^2)`` (NT's ``stax.Gabor``)."""
    return StaxLayer(L.Gabor())


def Rbf(gamma: float = 1.0) -> StaxLayer:
    """``sqrt(2) sin(sqrt(2 gamma) x + pi/4)`` (NT's ``stax.Rbf``)."""
    return StaxLayer(L.Rbf(gamma))


def Hermite(degree: int) -> StaxLayer:
    """The normalised Hermite polynomial of ``degree`` (NT's ``stax.Hermite``)."""
    return StaxLayer(L.Hermite(degree))


def Monomial(degree: int) -> StaxLayer:
    """``x^degree`` (NT's ``stax.Monomial``)."""
    return StaxLayer(L.Monomial(degree))


def RectifiedMonomial(degree: int) -> StaxLayer:
    """``max(x, 0)^degree`` (NT's ``stax.RectifiedMonomial``)."""
    return StaxLayer(L.RectifiedMonomial(degree))


def Polynomial(coef) -> StaxLayer:
    """``sum_i coef[i] x^i`` (NT's ``stax.Polynomial``)."""
    return StaxLayer(L.Polynomial(tuple(coef)))


# Combinators ----------------------------------------------------------------------
def serial(*layers: Any) -> StaxLayer:
    """Layers one after another (NT's ``stax.serial``)."""
    return StaxLayer(
        L.serial(*(unwrap(x, f"stax.serial argument {i}") for i, x in enumerate(layers)))
    )


def parallel(*layers: Any) -> StaxLayer:
    """One layer per branch of a list input (NT's ``stax.parallel``)."""
    return StaxLayer(
        L.parallel(*(unwrap(x, f"stax.parallel argument {i}") for i, x in enumerate(layers)))
    )


def repeat(layer: Any, n: int) -> StaxLayer:
    """``layer`` composed ``n`` times with untied weights (NT's ``stax.repeat``)."""
    return StaxLayer(L.repeat(unwrap(layer, "stax.repeat"), n))


def FanOut(num: int) -> StaxLayer:
    """Copy the input into ``num`` branches (NT's ``stax.FanOut``)."""
    return StaxLayer(L.FanOut(num))


def FanInSum() -> StaxLayer:
    """Sum the branches (NT's ``stax.FanInSum``)."""
    return StaxLayer(L.FanInSum())


def FanInProd() -> StaxLayer:
    """Multiply the branches elementwise (NT's ``stax.FanInProd``).

    The kernel is the product of the branch kernels (NTK by the product rule), as in NT:
    exact when the branches are independent, i.e. all but at most one have their own
    random weights after the ``FanOut``; they may end in any nonlinearity.
    """
    return StaxLayer(L.FanInProd())


def FanInConcat(axis: int = -1) -> StaxLayer:
    """Concatenate the branches along ``axis`` (NT's ``stax.FanInConcat``).

    Along the channel axis the kernel is the width-weighted mean of the branch kernels;
    along a spatial axis each branch keeps its kernel on its own positions and positions of
    different branches are uncorrelated (branches must end in independent affine layers on
    the all-pairs layout). The batch axis has no kernel (``KernelError``).
    """
    return StaxLayer(L.FanInConcat(axis))


__all__ = [
    "Bool",
    "Diagonal",
    "layer",
    "requires",
    "MaskedArray",
    "supports_masking",
    "unmask_fn",
    "Slice",
    "Index",
    "DotGeneral",
    "Aggregate",
    "ImageResize",
    "ConvTranspose",
    "ConvLocal",
    "ABRelu",
    "Abs",
    "AggregateImplementation",
    "AttentionMechanism",
    "AvgPool",
    "Conv",
    "Cos",
    "Dense",
    "Dropout",
    "Elementwise",
    "ElementwiseNumerical",
    "Erf",
    "Exp",
    "ExpNormalized",
    "Gabor",
    "Hermite",
    "Monomial",
    "Polynomial",
    "Rbf",
    "RectifiedMonomial",
    "FanInConcat",
    "FanInProd",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gaussian",
    "Gelu",
    "GlobalAvgPool",
    "GlobalSelfAttention",
    "GlobalSumPool",
    "Identity",
    "LayerNorm",
    "LeakyRelu",
    "Padding",
    "PositionalEmbedding",
    "Relu",
    "Sigmoid_like",
    "Sign",
    "Sin",
    "StaxLayer",
    "SumPool",
    "parallel",
    "repeat",
    "serial",
]
