"""Polynomial nonlinearities: ``Polynomial``, ``Monomial``, ``Hermite`` and
``RectifiedMonomial``.

``Polynomial``, ``Monomial`` and ``Hermite`` expose their monomial coefficients
(:attr:`coefficients`, lowest degree first) so kernel packages can derive their dual
kernels exactly for any input variances.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np

from .elementwise import ElementwiseLayer


def _check_degree(layer: str, degree) -> int:
    if isinstance(degree, bool) or int(degree) != degree or int(degree) < 0:
        raise ValueError(f"{layer}: degree must be a non-negative integer, got {degree!r}")
    return int(degree)


def _polyval(coefficients: tuple[float, ...], x):
    """``sum_k coefficients[k] x**k`` by Horner's rule."""
    y = jnp.zeros_like(x)
    for c in coefficients[::-1]:
        y = y * x + jnp.asarray(c, x.dtype)
    return y


@dataclasses.dataclass(frozen=True)
class Polynomial(ElementwiseLayer):
    """``coef[0] + coef[1] * x + ... + coef[n] * x**n``.

    Args:
        coef: coefficients, lowest degree first (``numpy.polynomial.Polynomial``'s order).

    Raises:
        ValueError: ``coef`` has non-finite entries.

    Example:
        >>> from widelab_core import layers as L
        >>> L.Polynomial((0.0, 1.0, 0.5)).coefficients
        (0.0, 1.0, 0.5)
    """

    coef: tuple[float, ...] = ()

    def __post_init__(self):
        coef = tuple(float(c) for c in np.ravel(np.asarray(self.coef, dtype=float)))
        if not all(math.isfinite(c) for c in coef):
            raise ValueError(f"Polynomial: coef must be finite numbers, got {self.coef!r}")
        object.__setattr__(self, "coef", coef)

    @property
    def coefficients(self) -> tuple[float, ...]:
        """Monomial coefficients, lowest degree first."""
        return self.coef

    def fn(self, x):
        return _polyval(self.coef, x)


@dataclasses.dataclass(frozen=True)
class Monomial(ElementwiseLayer):
    """``x**degree`` for a non-negative integer ``degree``.

    Raises:
        ValueError: ``degree`` is not a non-negative integer.
    """

    degree: int

    def __post_init__(self):
        object.__setattr__(self, "degree", _check_degree("Monomial", self.degree))

    @property
    def coefficients(self) -> tuple[float, ...]:
        """Monomial coefficients, lowest degree first."""
        return (0.0,) * self.degree + (1.0,)

    def fn(self, x):
        return x**self.degree


@dataclasses.dataclass(frozen=True)
class Hermite(ElementwiseLayer):
    """The probabilists' Hermite polynomial ``He_degree(x) / sqrt(degree!)``, of unit norm
    under the standard Gaussian.

    Raises:
        ValueError: ``degree`` is not a non-negative integer.
    """

    degree: int

    def __post_init__(self):
        object.__setattr__(self, "degree", _check_degree("Hermite", self.degree))

    @property
    def coefficients(self) -> tuple[float, ...]:
        """Monomial coefficients, lowest degree first."""
        he = np.polynomial.hermite_e.herme2poly([0.0] * self.degree + [1.0])
        return tuple(float(c) / math.sqrt(math.factorial(self.degree)) for c in he)

    def fn(self, x):
        return _polyval(self.coefficients, x)


@dataclasses.dataclass(frozen=True)
class RectifiedMonomial(ElementwiseLayer):
    """``x**degree`` for ``x >= 0`` and ``0`` otherwise (``degree = 0``: the unit step).

    Raises:
        ValueError: ``degree`` is not a non-negative integer.
    """

    degree: int

    def __post_init__(self):
        object.__setattr__(self, "degree", _check_degree("RectifiedMonomial", self.degree))

    def fn(self, x):
        return jnp.where(x >= 0, x**self.degree, jnp.zeros((), x.dtype))
