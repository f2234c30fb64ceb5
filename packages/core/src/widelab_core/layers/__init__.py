"""The layer algebra: networks as values (see DESIGN.md for the contract).

Every layer is an immutable value with ``init(key, input_shape)`` and
``apply(params, x, *, key=None, mask_constant=None)``. Names and keyword arguments
follow Neural Tangents' ``stax``.
"""

from ._base import Layer, LayerError, Shape, ShapeError, input_mask, is_multi, zero_masked
from .attention import GlobalSelfAttention
from .combinators import (
    FanInConcat,
    FanInProd,
    FanInSum,
    FanOut,
    Parallel,
    Repeat,
    Serial,
    parallel,
    repeat,
    serial,
)
from .conv import Conv
from .conv_variants import ConvLocal, ConvTranspose
from .dense import Dense
from .dot_general import DotGeneral
from .elementwise import (
    ABRelu,
    Abs,
    Cos,
    Elementwise,
    ElementwiseLayer,
    ElementwiseNumerical,
    Erf,
    Exp,
    ExpNormalized,
    Gabor,
    Gaussian,
    Gelu,
    LeakyRelu,
    Rbf,
    Relu,
    Sigmoid_like,
    Sign,
    Sin,
    Tanh,
)
from .graph import Aggregate
from .normalization import Dropout, LayerNorm
from .polynomial import Hermite, Monomial, Polynomial, RectifiedMonomial
from .pooling import AvgPool, GlobalAvgPool, GlobalSumPool, SumPool
from .resize import ImageResize, Index
from .structural import Flatten, Identity

__all__ = [
    "Aggregate",
    "ConvLocal",
    "ConvTranspose",
    "ImageResize",
    "Index",
    "DotGeneral",
    "RectifiedMonomial",
    "Polynomial",
    "Monomial",
    "Hermite",
    "Rbf",
    "Gabor",
    "ExpNormalized",
    "ABRelu",
    "Abs",
    "AvgPool",
    "Conv",
    "Cos",
    "Dense",
    "Dropout",
    "Elementwise",
    "ElementwiseLayer",
    "ElementwiseNumerical",
    "Erf",
    "Exp",
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
    "Layer",
    "LayerError",
    "LayerNorm",
    "LeakyRelu",
    "Parallel",
    "Relu",
    "Repeat",
    "Serial",
    "Shape",
    "ShapeError",
    "Sigmoid_like",
    "Sign",
    "Sin",
    "SumPool",
    "Tanh",
    "input_mask",
    "is_multi",
    "parallel",
    "repeat",
    "serial",
    "zero_masked",
]
