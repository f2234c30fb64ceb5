"""Elementwise nonlinearities.

Each is a frozen dataclass whose fields are the nonlinearity's constants, so other
packages can derive closed-form kernels from them. ``fn`` gives the finite-width map.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._base import Layer, LayerError, check_single


@dataclasses.dataclass(frozen=True)
class ElementwiseLayer(Layer):
    """Base of the nonlinearities: shape-preserving, parameter-free, mask-preserving."""

    def fn(self, x: jax.Array) -> jax.Array:
        """The scalar map applied to each entry."""
        raise NotImplementedError

    def init(self, key, input_shape):
        return check_single(self, input_shape), ()

    def apply_masked(self, params, x, mask, key):
        return self.fn(x), mask


@dataclasses.dataclass(frozen=True)
class Relu(ElementwiseLayer):
    """``max(x, 0)``."""

    def fn(self, x):
        return jax.nn.relu(x)


@dataclasses.dataclass(frozen=True)
class ABRelu(ElementwiseLayer):
    """``a * min(x, 0) + b * max(x, 0)``."""

    a: float
    b: float

    def fn(self, x):
        return self.a * jnp.minimum(x, 0) + self.b * jnp.maximum(x, 0)


@dataclasses.dataclass(frozen=True)
class LeakyRelu(ElementwiseLayer):
    """``alpha * min(x, 0) + max(x, 0)``."""

    alpha: float

    def fn(self, x):
        return self.alpha * jnp.minimum(x, 0) + jnp.maximum(x, 0)


@dataclasses.dataclass(frozen=True)
class Abs(ElementwiseLayer):
    """``|x|``."""

    def fn(self, x):
        return jnp.abs(x)


@dataclasses.dataclass(frozen=True)
class Erf(ElementwiseLayer):
    """``a * erf(b * x) + c``."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def fn(self, x):
        return self.a * jax.scipy.special.erf(self.b * x) + self.c


def Sigmoid_like() -> Erf:  # noqa: N802 - public name follows Neural Tangents
    """A sigmoid-shaped ``Erf``: ``0.5 * erf(x / 2.4020563531719796) + 0.5``."""
    return Erf(a=0.5, b=1 / 2.4020563531719796, c=0.5)


@dataclasses.dataclass(frozen=True)
class Gelu(ElementwiseLayer):
    """Gaussian error linear unit ``x * Phi(x)`` (tanh approximation if ``approximate``)."""

    approximate: bool = False

    def fn(self, x):
        return jax.nn.gelu(x, approximate=self.approximate)


@dataclasses.dataclass(frozen=True)
class Sin(ElementwiseLayer):
    """``a * sin(b * x + c)``."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def fn(self, x):
        return self.a * jnp.sin(self.b * x + self.c)


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Sin:  # noqa: N802
    """``a * cos(b * x + c)``, i.e. ``Sin(a, b, c + pi / 2)``."""
    return Sin(a=a, b=b, c=c + math.pi / 2)


@dataclasses.dataclass(frozen=True)
class Gaussian(ElementwiseLayer):
    """``a * exp(b * x**2)``."""

    a: float = 1.0
    b: float = -1.0

    def fn(self, x):
        return self.a * jnp.exp(self.b * x**2)


@dataclasses.dataclass(frozen=True)
class Exp(ElementwiseLayer):
    """``a * exp(b * x)``."""

    a: float = 1.0
    b: float = 1.0

    def fn(self, x):
        return self.a * jnp.exp(self.b * x)


@dataclasses.dataclass(frozen=True)
class Sign(ElementwiseLayer):
    """``sign(x)``."""

    def fn(self, x):
        return jnp.sign(x)


@dataclasses.dataclass(frozen=True)
class Tanh(ElementwiseLayer):
    """``tanh(x)`` (no closed-form kernel; kernels use quadrature)."""

    def fn(self, x):
        return jnp.tanh(x)


@dataclasses.dataclass(frozen=True)
class Elementwise(ElementwiseLayer):
    """Any elementwise map ``fn``, optionally with its dual kernels in closed form.

    ``nngp_fn(cov12, var1, var2)`` gives ``E[fn(u) fn(v)]`` for a centred Gaussian pair
    ``(u, v)`` with those variances and covariance, and ``d_nngp_fn`` the same for
    ``fn'``, so kernel packages can use them. Without ``d_nngp_fn`` kernels take
    ``d nngp_fn / d cov12`` (equal to ``E[fn'(u) fn'(v)]`` by Price's theorem); without
    ``nngp_fn`` they fall back to quadrature of ``fn``. ``fn`` may be ``None`` when
    ``nngp_fn`` is given (a kernel-only layer: :meth:`apply` then raises).

    Raises:
        TypeError: neither ``fn`` nor ``nngp_fn`` is given, or one is not callable.
    """

    fn_: Callable[[jax.Array], jax.Array] | None = dataclasses.field(default=None)
    nngp_fn: Callable | None = None
    d_nngp_fn: Callable | None = None

    def __init__(self, fn=None, nngp_fn=None, d_nngp_fn=None):
        if fn is None and nngp_fn is None:
            raise TypeError("Elementwise: give fn, nngp_fn or both; got neither")
        for name, f in (("fn", fn), ("nngp_fn", nngp_fn), ("d_nngp_fn", d_nngp_fn)):
            if f is not None and not callable(f):
                raise TypeError(f"Elementwise: {name} must be callable or None, got {f!r}")
        object.__setattr__(self, "fn_", fn)
        object.__setattr__(self, "nngp_fn", nngp_fn)
        object.__setattr__(self, "d_nngp_fn", d_nngp_fn)

    def fn(self, x):
        if self.fn_ is None:
            raise LayerError(self, "has no finite-width map (fn=None): only its kernel exists")
        return self.fn_(x)


@dataclasses.dataclass(frozen=True)
class ElementwiseNumerical(ElementwiseLayer):
    """Any elementwise map ``fn`` whose kernel is computed by Gauss-Hermite quadrature
    of degree ``deg`` (by kernel packages; here it only applies ``fn``)."""

    fn_: Callable[[jax.Array], jax.Array] = dataclasses.field(default=None)
    deg: int = 25

    def __init__(self, fn, deg: int = 25):
        if not callable(fn):
            raise TypeError(f"ElementwiseNumerical: fn must be callable, got {fn!r}")
        if int(deg) < 2:
            raise ValueError(f"ElementwiseNumerical: deg must be >= 2, got {deg}")
        object.__setattr__(self, "fn_", fn)
        object.__setattr__(self, "deg", int(deg))

    def fn(self, x):
        return self.fn_(x)


@dataclasses.dataclass(frozen=True)
class Gabor(ElementwiseLayer):
    """Gabor function ``exp(-x**2) * sin(x)``."""

    def fn(self, x):
        return jnp.exp(-(x**2)) * jnp.sin(x)


@dataclasses.dataclass(frozen=True)
class Rbf(ElementwiseLayer):
    """``sqrt(2) * sin(sqrt(2 * gamma) * x + pi / 4)``, whose dual kernel is the squared
    exponential ``exp(-gamma * (q1 + q2 - 2 c))`` of its input covariances.

    ``gamma = 1 / (2 l**2)`` for a length scale ``l``.
    """

    gamma: float = 1.0

    def fn(self, x):
        return math.sqrt(2) * jnp.sin(jnp.sqrt(2 * self.gamma) * x + math.pi / 4)


@dataclasses.dataclass(frozen=True)
class ExpNormalized(ElementwiseLayer):
    """The "Gaussian normalized kernel" (Shankar et al. 2020, "Neural Kernels Without
    Tangents", p. 6): a kernel-only layer mapping the covariance ``c`` of two inputs with
    variances ``q1, q2`` to ``sqrt(q1 q2) exp(gamma (c / sqrt(q1 q2) + shift))``.

    It has no finite-width map: :meth:`apply` raises.

    Args:
        gamma: exponent scale.
        shift: shift of the normalized covariance.
        do_clip: clip the normalized covariance to ``[-1, 1]`` first.
    """

    gamma: float = 1.0
    shift: float = -1.0
    do_clip: bool = False

    def fn(self, x):
        raise LayerError(self, "has no finite-width map: it defines only a kernel")
