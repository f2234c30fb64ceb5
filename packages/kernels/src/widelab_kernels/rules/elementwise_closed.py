"""Closed-form kernel rules of the polynomial, Gabor, RBF and normalized-exponential
nonlinearities, and of ``Elementwise`` layers with user-given dual kernels.

Notation as in :mod:`.elementwise`: ``(u, v)`` centred Gaussian with variances ``q1, q2``
and covariance ``c``; ``rho = c / sqrt(q1 q2) = cos(theta)``.

* Polynomials (``Polynomial``, ``Monomial``, ``Hermite``): with ``u = sqrt(q) z`` the
  Hermite expansion ``f(u) = sum_l r_l(q) He_l(z) / sqrt(l!)`` gives
  ``E[f(u) f(v)] = sum_l R_l(q1) R_l(q2) c^l`` with
  ``R_l(q) = sum_i a_{2i+l} (2i+l)! / (2^i i! sqrt(l!)) q^i`` (Mehler's formula). This is
  a polynomial in ``(c, q1, q2)``: exact for every variance, including zero.
* ``RectifiedMonomial(n)``: Cho & Saul (2009), eq. 3-4, the arc-cosine kernel of order
  ``n``, ``E = (q1 q2)^{n/2} J_n(theta) / (2 pi)`` with
  ``J_n = (-1)^n sin^{2n+1}(theta) (sin^{-1} d/dtheta)^n ((pi - theta) / sin(theta))``.
  Carrying out the derivatives symbolically gives
  ``J_n = (-1)^n ((pi - theta) A_n(cos theta) + sin(theta) B_n(cos theta))`` with
  polynomials ``A_0 = 1, B_0 = 0``, ``A_{k+1} = -(1 - t^2) A_k' - (2k + 1) t A_k``,
  ``B_{k+1} = -A_k - 2k t B_k - (1 - t^2) B_k'``: finite at ``theta = 0`` (the diagonal),
  where differentiating the quotient numerically gives NaN.
* ``Gabor`` (``exp(-x^2) sin x``): with ``D = det(I + 2 Sigma) = 1 + 2 (q1 + q2) +
  4 (q1 q2 - c^2)`` and ``S = q1 + q2 + 4 (q1 q2 - c^2)``, Gaussian integrals of
  ``exp(-|w|^2 + i a.w)`` give ``E = D^{-1/2} exp(-S / (2 D)) sinh(c / D)``.
* ``Rbf(gamma)``: ``E = exp(-gamma (q1 + q2 - 2 c))``.
* ``ExpNormalized``: ``E = sqrt(q1 q2) exp(gamma (rho + shift))`` (Shankar et al. 2020).

Derivative kernels ``E[f'(u) f'(v)]`` equal ``dE/dc`` (Price's theorem); where no simpler
form is written out they are taken by forward-mode differentiation of the closed form.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from numpy.polynomial import polynomial as P
from widelab_core import layers as L

from .elementwise import PairFn, _angle, _pair_scale, _safe_sqrt, register_elementwise


def _d_dc(nngp: PairFn) -> PairFn:
    """``d nngp / d c`` of an elementwise pair function, by forward-mode autodiff."""

    def dot(c, q1, q2):
        c, q1, q2 = jnp.broadcast_arrays(c, q1, q2)
        return jax.jvp(lambda x: nngp(x, q1, q2), (c,), (jnp.ones_like(c),))[1]

    return dot


def _hermite_coefficients(coef) -> np.ndarray:
    """``B[l, i] = a_{2i+l} (2i+l)! / (2^i i! sqrt(l!))`` (zero where ``2i + l > deg``)."""
    n = len(coef)
    b = np.zeros((max(n, 1), max((n + 1) // 2, 1)))
    for l in range(n):  # noqa: E741 - the paper's index
        for i in range((n - 1 - l) // 2 + 1):
            k = 2 * i + l
            b[l, i] = (
                coef[k]
                * math.factorial(k)
                / (2**i * math.factorial(i) * math.sqrt(math.factorial(l)))
            )
    return b


def polynomial_fns(coef) -> tuple[PairFn, PairFn]:
    """Dual kernels of ``sum_k coef[k] x^k`` (module docstring): exact polynomials."""
    b = _hermite_coefficients(tuple(coef))

    def r(q, l):  # noqa: E741
        out = jnp.zeros_like(q)
        for coef_i in b[l][::-1]:
            out = out * q + coef_i
        return out

    def series(c, q1, q2, deriv):
        c, q1, q2 = jnp.broadcast_arrays(c, q1, q2)
        out = jnp.zeros_like(c)
        start = 1 if deriv else 0
        for l in range(b.shape[0] - 1, start - 1, -1):  # noqa: E741 - Horner in c
            term = r(q1, l) * r(q2, l)
            out = out * c + (l * term if deriv else term)
        return out

    return (lambda c, q1, q2: series(c, q1, q2, False)), (lambda c, q1, q2: series(c, q1, q2, True))


def _arc_cosine_polys(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Monomial coefficients of ``A_n`` and ``B_n`` (module docstring)."""
    a, b = np.array([1.0]), np.array([0.0])
    one_minus_t2 = np.array([1.0, 0.0, -1.0])
    t = np.array([0.0, 1.0])
    for k in range(n):
        a_new = -P.polymul(one_minus_t2, P.polyder(a)) - (2 * k + 1) * P.polymul(t, a)
        b_new = -a - 2 * k * P.polymul(t, b) - P.polymul(one_minus_t2, P.polyder(b))
        a, b = P.polytrim(a_new), P.polytrim(P.polyadd(b_new, np.zeros(1)))
    return a, b


def _horner(coef, x):
    out = jnp.zeros_like(x)
    for ci in coef[::-1]:
        out = out * x + ci
    return out


def rectified_monomial_fns(n: int) -> tuple[PairFn, PairFn]:
    """Dual kernels of ``x^n 1[x >= 0]`` (Cho & Saul 2009, eq. 3-4; module docstring)."""

    def order(m):
        a, b = _arc_cosine_polys(m)
        sign = (-1.0) ** m

        def nngp(c, q1, q2):
            theta, _, prod = _angle(c, q1, q2)
            rho = jnp.clip(c / jnp.where(prod > 0, prod, 1.0), -1.0, 1.0)
            sin = _safe_sqrt((1.0 - rho) * (1.0 + rho))
            j = sign * ((jnp.pi - theta) * _horner(a, rho) + sin * _horner(b, rho))
            return prod**m * j / (2 * jnp.pi)

        return nngp

    nngp = order(n)
    if n == 0:
        return nngp, lambda c, q1, q2: jnp.zeros_like(c * q1 * q2)
    lower = order(n - 1)
    return nngp, lambda c, q1, q2: n**2 * lower(c, q1, q2)


def gabor_fns() -> tuple[PairFn, PairFn]:
    """Dual kernels of ``exp(-x^2) sin x`` (module docstring)."""

    def nngp(c, q1, q2):
        delta = q1 * q2 - c**2
        d = 1 + 2 * (q1 + q2) + 4 * delta
        s = q1 + q2 + 4 * delta
        return jnp.exp(-s / (2 * d)) * jnp.sinh(c / d) / jnp.sqrt(d)

    return nngp, _d_dc(nngp)


def rbf_fns(gamma) -> tuple[PairFn, PairFn]:
    """Dual kernels of ``sqrt(2) sin(sqrt(2 gamma) x + pi/4)``: the squared exponential."""

    def nngp(c, q1, q2):
        return jnp.exp(-gamma * (q1 + q2 - 2 * c))

    def dot(c, q1, q2):
        return 2 * gamma * nngp(c, q1, q2)

    return nngp, dot


def exp_normalized_fns(gamma, shift, do_clip) -> tuple[PairFn, PairFn]:
    """``sqrt(q1 q2) exp(gamma (rho + shift))`` and its ``c``-derivative."""

    def parts(c, q1, q2):
        prod = _pair_scale(q1, q2)
        rho = c / jnp.where(prod > 0, prod, 1.0)
        if do_clip:
            rho = jnp.clip(rho, -1.0, 1.0)
        return prod, jnp.exp(gamma * (rho + shift))

    def nngp(c, q1, q2):
        prod, e = parts(c, q1, q2)
        return prod * e

    def dot(c, q1, q2):
        return gamma * parts(c, q1, q2)[1]

    return nngp, dot


def user_fns(layer: L.Elementwise) -> tuple[PairFn, PairFn]:
    """``Elementwise``: the user's ``nngp_fn`` (scalar or array-valued) and
    ``d_nngp_fn``, else ``d nngp_fn / d c``; quadrature of ``fn`` without ``nngp_fn``."""
    from .elementwise import quadrature_fns

    if layer.nngp_fn is None:
        return quadrature_fns(layer.fn)
    nngp = jnp.vectorize(layer.nngp_fn)
    dot = _d_dc(nngp) if layer.d_nngp_fn is None else jnp.vectorize(layer.d_nngp_fn)
    return nngp, dot


register_elementwise(L.Polynomial, lambda layer: polynomial_fns(layer.coefficients))
register_elementwise(L.Monomial, lambda layer: polynomial_fns(layer.coefficients))
register_elementwise(L.Hermite, lambda layer: polynomial_fns(layer.coefficients))
register_elementwise(L.RectifiedMonomial, lambda layer: rectified_monomial_fns(layer.degree))
register_elementwise(L.Gabor, lambda layer: gabor_fns())
register_elementwise(L.Rbf, lambda layer: rbf_fns(layer.gamma))
register_elementwise(
    L.ExpNormalized, lambda layer: exp_normalized_fns(layer.gamma, layer.shift, layer.do_clip)
)
register_elementwise(L.Elementwise, user_fns)
