"""Closed-form dual kernels against independent 1-D quadratures, float64, to 1e-10.

Reference values integrate over ``u`` with scipy's adaptive ``quad`` and use the
conditional law ``v | u ~ N(c u / q1, q2 - c^2 / q1)`` with textbook Gaussian
expectations for the inner integral, so they share no formula with the rules.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats
from widelab_kernels.rules import elementwise as E

POINTS = [(0.3, 1.0, 0.8), (-0.5, 0.7, 1.5), (0.95, 1.1, 0.9), (0.0, 2.0, 0.5)]


def _cond(u, c, q1, q2):
    return c / q1 * u, math.sqrt(q2 - c**2 / q1)


def _expect(outer, inner, c, q1, q2, split=False):
    """``E[outer(u) inner(m(u), s)]`` for ``u ~ N(0, q1)``."""
    s1 = math.sqrt(q1)

    def integrand(u):
        m, s = _cond(u, c, q1, q2)
        return outer(u) * inner(m, s) * stats.norm.pdf(u, scale=s1)

    kw = dict(epsabs=1e-13, epsrel=1e-12, limit=200)
    if split:
        return (
            integrate.quad(integrand, -np.inf, 0, **kw)[0]
            + integrate.quad(integrand, 0, np.inf, **kw)[0]
        )
    return integrate.quad(integrand, -np.inf, np.inf, **kw)[0]


Phi, phi = stats.norm.cdf, stats.norm.pdf


def ref_relu(c, q1, q2):
    nngp = _expect(
        lambda u: max(u, 0.0), lambda m, s: m * Phi(m / s) + s * phi(m / s), c, q1, q2, True
    )
    dot = _expect(lambda u: float(u > 0), lambda m, s: Phi(m / s), c, q1, q2, True)
    return nngp, dot


def ref_erf(a, b, c0):
    def f(c, q1, q2):
        nngp = _expect(
            lambda u: a * special.erf(b * u) + c0,
            lambda m, s: a * special.erf(b * m / math.sqrt(1 + 2 * b**2 * s**2)) + c0,
            c,
            q1,
            q2,
        )
        k = 2 * a * b / math.sqrt(math.pi)
        dot = _expect(
            lambda u: k * math.exp(-(b**2) * u**2),
            lambda m, s: (
                k
                * math.exp(-(b**2) * m**2 / (1 + 2 * b**2 * s**2))
                / math.sqrt(1 + 2 * b**2 * s**2)
            ),
            c,
            q1,
            q2,
        )
        return nngp, dot

    return f


def ref_sin(a, b, c0):
    def f(c, q1, q2):
        nngp = _expect(
            lambda u: a * math.sin(b * u + c0),
            lambda m, s: a * math.sin(b * m + c0) * math.exp(-(b**2) * s**2 / 2),
            c,
            q1,
            q2,
        )
        dot = _expect(
            lambda u: a * b * math.cos(b * u + c0),
            lambda m, s: a * b * math.cos(b * m + c0) * math.exp(-(b**2) * s**2 / 2),
            c,
            q1,
            q2,
        )
        return nngp, dot

    return f


def ref_gaussian(a, b):
    def f(c, q1, q2):
        def inner(m, s):
            d = 1 - 2 * b * s**2
            return a * math.exp(b * m**2 / d) / math.sqrt(d)

        def inner_d(m, s):
            d = 1 - 2 * b * s**2
            return 2 * a * b * m / d**1.5 * math.exp(b * m**2 / d)

        nngp = _expect(lambda u: a * math.exp(b * u**2), inner, c, q1, q2)
        dot = _expect(lambda u: 2 * a * b * u * math.exp(b * u**2), inner_d, c, q1, q2)
        return nngp, dot

    return f


def ref_gelu(c, q1, q2):
    def inner(m, s):
        r = math.sqrt(1 + s**2)
        return m * Phi(m / r) + s**2 / r * phi(m / r)

    def inner_d(m, s):
        r = math.sqrt(1 + s**2)
        a = phi(m / r) / r
        return Phi(m / r) + a * m / (1 + s**2)

    nngp = _expect(lambda u: u * Phi(u), inner, c, q1, q2)
    dot = _expect(lambda u: Phi(u) + u * phi(u), inner_d, c, q1, q2)
    return nngp, dot


CASES = {
    "relu (arc-cosine)": (E.abrelu_fns(0.0, 1.0), ref_relu),
    "erf (Williams)": (E.erf_fns(1.0, 1.0, 0.0), ref_erf(1.0, 1.0, 0.0)),
    "erf a,b,c": (E.erf_fns(0.5, 0.7, 0.2), ref_erf(0.5, 0.7, 0.2)),
    "sin": (E.sin_fns(1.2, 0.8, 0.3), ref_sin(1.2, 0.8, 0.3)),
    "gaussian": (E.gaussian_fns(1.0, -0.8), ref_gaussian(1.0, -0.8)),
    "gelu": (E.gelu_fns(), ref_gelu),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dual_kernels_match_quadrature(name):
    (nngp_fn, dot_fn), ref = CASES[name]
    with jax.enable_x64(True):
        for c, q1, q2 in POINTS:
            args = [jnp.asarray(v, jnp.float64) for v in (c, q1, q2)]
            want_nngp, want_dot = ref(c, q1, q2)
            got_nngp = float(nngp_fn(*args))
            got_dot = float(dot_fn(*args))
            assert abs(got_nngp - want_nngp) < 1e-10, (name, c, q1, q2, got_nngp, want_nngp)
            assert abs(got_dot - want_dot) < 1e-10, (name, c, q1, q2, got_dot, want_dot)


def test_relu_diagonal_is_exact_and_gradient_finite():
    """At c = q (theta = 0) the arc-cosine kernel is q / 2 and its gradient is finite."""
    nngp_fn, dot_fn = E.abrelu_fns(0.0, 1.0)
    with jax.enable_x64(True):
        q = jnp.asarray(1.7, jnp.float64)
        assert abs(float(nngp_fn(q, q, q)) - 0.85) < 1e-12
        assert abs(float(dot_fn(q, q, q)) - 0.5) < 1e-12
        g = jax.grad(lambda v: nngp_fn(v, v, v))(q)
        assert np.isfinite(float(g)) and abs(float(g) - 0.5) < 1e-10


def test_quadrature_matches_closed_form():
    """Gauss-Hermite quadrature (used for Tanh etc.) reproduces the erf closed form."""
    with jax.enable_x64(True):
        args = [jnp.asarray(v, jnp.float64) for v in (0.3, 1.0, 0.8)]
        qn, qd = E.quadrature_fns(lambda x: jax.scipy.special.erf(x), deg=60)
        cn, cd = E.erf_fns(1.0, 1.0, 0.0)
        assert abs(float(qn(*args)) - float(cn(*args))) < 1e-8
        assert abs(float(qd(*args)) - float(cd(*args))) < 1e-8
