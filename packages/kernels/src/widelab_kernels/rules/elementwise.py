"""Kernel rules of the elementwise nonlinearities.

For a nonlinearity ``phi`` and a centred Gaussian pair ``(u, v)`` with variances
``q1, q2`` and covariance ``c``, the NNGP maps ``c`` to ``E[phi(u) phi(v)]`` and the NTK
maps ``Theta`` to ``c' + Theta * E[phi'(u) phi'(v)]`` (the ``c'`` term is added by the
next affine layer). Closed forms:

* ReLU/ABReLU/LeakyReLU/Abs: arc-cosine kernel (Cho & Saul 2009, eq. 6), with the angle
  from ``arctan2`` for stability;
* Erf: Williams (1997), ``E = 2/pi * arcsin(2 b^2 c / sqrt((1 + 2 b^2 q1)(1 + 2 b^2 q2)))``;
* Sin/Cos, Exp, Gaussian: Gaussian integrals of exponentials;
* GELU: Stein's lemma plus Gaussian tilting (derivation in the README);
* everything else (Tanh, ``ElementwiseNumerical``, approximate GELU): 2-D Gauss-Hermite
  quadrature.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core import layers as L

from ..kernel import Kernel, pair_variances, self_broadcast
from ..registry import KernelError, RuleContext, register_rule

PairFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def _safe_sqrt(x):
    """``sqrt(max(x, 0))`` with a finite gradient at 0 (grad-through-kernels safe)."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def _arccos_factor_coefficients(degree: int = 9) -> np.ndarray:
    """Monomial coefficients of a polynomial ``P`` with ``arccos(a) ~ sqrt(1 - a) P(a)`` on
    ``[0, 1]``: a Chebyshev least-squares fit of the smooth ``arccos(a) / sqrt(1 - a)``
    (maximum error 5e-10 in float64, below float32 rounding)."""
    m = 2048
    a = 0.5 + 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
    fit = np.polynomial.chebyshev.Chebyshev.fit(
        a, np.arccos(a) / np.sqrt(1.0 - a), degree, domain=[0.0, 1.0]
    )
    return fit.convert(kind=np.polynomial.Polynomial).coef


_ARCCOS_COEF = _arccos_factor_coefficients()


def _arccos_single(rho, sqrt_1ma=None):
    """``arccos(rho)`` for single or lower precision ``rho`` in ``[-1, 1]``.

    ``arccos(|rho|) = sqrt(1 - |rho|) P(|rho|)`` and ``arccos(-a) = pi - arccos(a)``: a
    polynomial and a square root, about ten times faster than XLA's CPU ``arctan2``
    and as accurate in float32 (absolute error < 5e-7 against float64 ``arccos``).
    ``sqrt_1ma`` is ``sqrt(1 - |rho|)`` if the caller has it.
    """
    a = jnp.abs(rho)
    p = jnp.asarray(_ARCCOS_COEF[-1], rho.dtype)
    for coef in _ARCCOS_COEF[-2::-1]:
        p = p * a + jnp.asarray(coef, rho.dtype)
    t = p * (_safe_sqrt(1.0 - a) if sqrt_1ma is None else sqrt_1ma)
    return jnp.where(rho < 0, jnp.asarray(np.pi, rho.dtype) - t, t)


def _angle(c, q1, q2):
    """``(theta, sqrt(q1 q2 - c^2), sqrt(q1 q2))`` with ``theta = arccos(c / sqrt(q1 q2))``.

    In float64 the angle comes from ``arctan2`` (stable near ``rho = +-1``); in single
    precision from :func:`_arccos_single`, equally accurate at that precision.
    """
    prod = _pair_scale(q1, q2)
    rho = jnp.clip(c / jnp.where(prod > 0, prod, 1.0), -1.0, 1.0)
    if jnp.finfo(rho.dtype).bits <= 32:
        a = jnp.abs(rho)
        sqrt_1ma = _safe_sqrt(1.0 - a)
        sin = sqrt_1ma * jnp.sqrt(1.0 + a)
        theta = _arccos_single(rho, sqrt_1ma)
    else:
        sin = _safe_sqrt((1.0 - rho) * (1.0 + rho))
        theta = jnp.arctan2(sin, rho)
    return theta, prod * sin, prod


def _pair_scale(q1, q2):
    """``sqrt(q1 q2)`` as ``sqrt(q1) sqrt(q2)``: the square roots are taken of the
    per-example variances before they are broadcast to all pairs."""
    return _safe_sqrt(q1) * _safe_sqrt(q2)


# ---------------------------------------------------------------- closed forms
def abrelu_fns(a, b) -> tuple[PairFn, PairFn]:
    """Dual kernels of ``a min(x, 0) + b max(x, 0)`` (Cho & Saul 2009, eq. 6).

    ``E[f(u) f(v)] = a b c + (b - a)^2 (sqrt(q1 q2 - c^2) + (pi - theta) c) / (2 pi)`` and
    ``E[f'(u) f'(v)] = (a^2 + b^2) (pi - theta) / (2 pi) + a b theta / pi``.
    """

    def nngp(c, q1, q2):
        theta, root, _ = _angle(c, q1, q2)
        return a * b * c + (b - a) ** 2 * (root + (jnp.pi - theta) * c) / (2 * jnp.pi)

    def dot(c, q1, q2):
        theta, _, _ = _angle(c, q1, q2)
        return (a**2 + b**2) * (jnp.pi - theta) / (2 * jnp.pi) + a * b * theta / jnp.pi

    return nngp, dot


def erf_fns(a, b, c0) -> tuple[PairFn, PairFn]:
    """Dual kernels of ``a erf(b x) + c0`` (Williams 1997, eq. 11)."""

    def nngp(c, q1, q2):
        s1, s2 = 1 + 2 * b**2 * q1, 1 + 2 * b**2 * q2
        arg = 2 * b**2 * c
        # arcsin(arg / sqrt(s1 s2)) = arctan2(arg, sqrt(s1 s2 - arg^2))
        return a**2 * 2 / jnp.pi * jnp.arctan2(arg, _safe_sqrt(s1 * s2 - arg**2)) + c0**2

    def dot(c, q1, q2):
        s1, s2 = 1 + 2 * b**2 * q1, 1 + 2 * b**2 * q2
        det = s1 * s2 - 4 * b**4 * c**2
        return 4 * a**2 * b**2 / jnp.pi / jnp.sqrt(det)

    return nngp, dot


def sin_fns(a, b, c0) -> tuple[PairFn, PairFn]:
    """Dual kernels of ``a sin(b x + c0)``: products of sines as cosines of ``u -+ v``."""

    def parts(c, q1, q2):
        minus = jnp.exp(-(b**2) * (q1 + q2 - 2 * c) / 2)
        plus = jnp.exp(-(b**2) * (q1 + q2 + 2 * c) / 2)
        return minus, plus * jnp.cos(2 * c0)

    def nngp(c, q1, q2):
        minus, plus = parts(c, q1, q2)
        return a**2 * (minus - plus) / 2

    def dot(c, q1, q2):
        minus, plus = parts(c, q1, q2)
        return a**2 * b**2 * (minus + plus) / 2

    return nngp, dot


def gaussian_fns(a, b) -> tuple[PairFn, PairFn]:
    """Dual kernels of ``a exp(b x^2)``: ``E = a^2 / sqrt(det(I - 2 b Sigma))`` and
    ``E[f' f'] = 4 a^2 b^2 c / det(I - 2 b Sigma)^{3/2}``."""

    def det(c, q1, q2):
        return (1 - 2 * b * q1) * (1 - 2 * b * q2) - 4 * b**2 * c**2

    def nngp(c, q1, q2):
        return a**2 / jnp.sqrt(det(c, q1, q2))

    def dot(c, q1, q2):
        return 4 * a**2 * b**2 * c / det(c, q1, q2) ** 1.5

    return nngp, dot


def exp_fns(a, b) -> tuple[PairFn, PairFn]:
    """Dual kernels of ``a exp(b x)``: ``E = a^2 exp(b^2 (q1 + q2 + 2 c) / 2)``."""

    def nngp(c, q1, q2):
        return a**2 * jnp.exp(b**2 * (q1 + q2 + 2 * c) / 2)

    def dot(c, q1, q2):
        return b**2 * nngp(c, q1, q2)

    return nngp, dot


def gelu_fns() -> tuple[PairFn, PairFn]:
    """Dual kernels of ``x Phi(x)``.

    With ``D = (1 + q1)(1 + q2) - c^2`` and ``P = 1/4 + arctan2(c, sqrt(D)) / (2 pi)``
    (``= E[Phi(u) Phi(v)]``), Stein's lemma and Gaussian tilting give
    ``E[f f] = (q1 q2 + c^2 (1 - q1 q2) / ((1 + q1)(1 + q2))) / (2 pi sqrt(D)) + c P`` and
    ``E[f' f'] = P + c (1/(1+q1) + 1/(1+q2)) / (2 pi sqrt(D)) + c / (2 pi D^{3/2})``.
    """

    def nngp(c, q1, q2):
        d = (1 + q1) * (1 + q2) - c**2
        root = jnp.sqrt(d)
        p = 0.25 + jnp.arctan2(c, root) / (2 * jnp.pi)
        first = q1 * q2 + c**2 * (1 - q1 * q2) / ((1 + q1) * (1 + q2))
        return first / (2 * jnp.pi * root) + c * p

    def dot(c, q1, q2):
        d = (1 + q1) * (1 + q2) - c**2
        root = jnp.sqrt(d)
        p = 0.25 + jnp.arctan2(c, root) / (2 * jnp.pi)
        return (
            p
            + c * (1 / (1 + q1) + 1 / (1 + q2)) / (2 * jnp.pi * root)
            + c / (2 * jnp.pi * d * root)
        )

    return nngp, dot


def sign_fns() -> tuple[PairFn, PairFn]:
    """``E[sign u sign v] = 1 - 2 theta / pi``; the derivative is 0 almost everywhere."""

    def nngp(c, q1, q2):
        theta, _, _ = _angle(c, q1, q2)
        return 1 - 2 * theta / jnp.pi

    def dot(c, q1, q2):
        return jnp.zeros_like(c)

    return nngp, dot


def quadrature_fns(fn: Callable, deg: int = 25) -> tuple[PairFn, PairFn]:
    """Dual kernels of any ``fn`` by ``deg x deg`` Gauss-Hermite quadrature.

    ``u = sqrt(q1) z1``, ``v = sqrt(q2) (rho z1 + sqrt(1 - rho^2) z2)`` with ``z`` standard
    normal; the derivative's kernel uses ``jax.grad(fn)``.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(int(deg))
    weights = weights / np.sqrt(2 * np.pi)
    dfn = jax.vmap(jax.grad(lambda x: jnp.sum(fn(x))))

    def integrate(f, c, q1, q2):
        dtype = jnp.result_type(c, q1, q2)
        z = jnp.asarray(nodes, dtype)
        w = jnp.asarray(weights, dtype)
        s1, s2 = _safe_sqrt(q1), _safe_sqrt(q2)
        prod = s1 * s2
        rho = jnp.clip(c / jnp.where(prod > 0, prod, 1.0), -1.0, 1.0)
        rest = _safe_sqrt(1 - rho**2)
        ex = lambda a: a[..., None, None]
        lead = (1,) * c.ndim
        zc = jnp.reshape(z, lead + (z.shape[0], 1))
        zr = jnp.reshape(z, lead + (1, z.shape[0]))
        u = ex(s1) * zc
        v = ex(s2) * (ex(rho) * zc + ex(rest) * zr)
        u = jnp.broadcast_to(u, v.shape)
        fu = jnp.reshape(f(jnp.reshape(u, (-1,))), u.shape)
        fv = jnp.reshape(f(jnp.reshape(v, (-1,))), v.shape)
        ww = jnp.reshape(w[:, None] * w[None, :], lead + (w.shape[0], w.shape[0]))
        return jnp.sum(fu * fv * ww, axis=(-2, -1))

    def nngp(c, q1, q2):
        c, q1, q2 = jnp.broadcast_arrays(c, q1, q2)
        return integrate(fn, c, q1, q2)

    def dot(c, q1, q2):
        c, q1, q2 = jnp.broadcast_arrays(c, q1, q2)
        return integrate(dfn, c, q1, q2)

    return nngp, dot


# ---------------------------------------------------------------- the rule
def self_pairs(k: Kernel) -> jax.Array:
    """Boolean mask, broadcastable against ``k.nngp`` of a square kernel, of the entries
    that pair an example and position with themselves."""
    shape = k.nngp.shape
    d = k.n_spatial
    eq = lambda a, b: (
        jax.lax.broadcasted_iota(jnp.int32, shape, a)
        == jax.lax.broadcasted_iota(jnp.int32, shape, b)
    )
    mask = eq(0, 1)
    if not k.diagonal_spatial:
        for i in range(d):
            mask = mask & eq(2 + i, 2 + d + i)
    return mask


def _self_covariance(cov, var, k: Kernel):
    """``(c, q1, q2)`` for an example's covariance with itself, with ``c`` set to
    ``sqrt(q1) sqrt(q2)`` (correlation exactly 1) where a position meets itself, as for
    the batch diagonal of ``nngp``: rounding there would move the angle by ``sqrt(eps)``."""
    a, b = self_broadcast(var, k)
    if k.diagonal_spatial or k.n_spatial == 0:
        return _pair_scale(a, b), a, b
    shape = cov.shape
    d = k.n_spatial
    same = jnp.ones(shape, bool)
    for i in range(d):
        same = same & (
            jax.lax.broadcasted_iota(jnp.int32, shape, 1 + i)
            == jax.lax.broadcasted_iota(jnp.int32, shape, 1 + d + i)
        )
    return jnp.where(same, jnp.broadcast_to(_pair_scale(a, b), shape), cov), a, b


def transform(k: Kernel, nngp_fn: PairFn, dot_fn: PairFn, layer, ctx: RuleContext) -> Kernel:
    """Apply a nonlinearity's dual kernels to every covariance of ``k``.

    Raises:
        KernelError: the input is not Gaussian (no affine layer before the nonlinearity).
    """
    if not k.is_gaussian:
        raise KernelError(
            layer,
            "its input is not a Gaussian process: put a Dense or Conv layer (a random "
            "affine map) before a nonlinearity",
            ctx.where,
        )
    v1, v2 = pair_variances(k)
    c = k.nngp
    if k.x1_is_x2:
        # An example with itself has correlation exactly 1; rounding in the Gram matrix
        # would otherwise move the arc-cosine angle there by sqrt(eps).
        # ``c = sqrt(v1) sqrt(v2)`` there, computed as the angle code computes its
        # denominator, makes ``rho = 1`` exactly.
        c = jnp.where(self_pairs(k), jnp.broadcast_to(_pair_scale(v1, v2), c.shape), c)
    nngp = nngp_fn(c, v1, v2)
    ntk = None
    if k.ntk is not None:
        ntk = k.ntk * dot_fn(c, v1, v2)
    cov1 = nngp_fn(*_self_covariance(k.cov1, k.var1(), k))
    cov2 = None
    if k.cov2 is not None:
        cov2 = nngp_fn(*_self_covariance(k.cov2, k.var2(), k))
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)


def register_elementwise(
    layer_cls: type, fns: Callable[[object], tuple[PairFn, PairFn]], *, subclasses: bool = False
) -> None:
    """Register the kernel rule of a nonlinearity class from its dual kernels.

    ``fns(layer)`` returns ``(nngp_fn, dot_fn)``, the maps ``(c, q1, q2) -> E[f(u) f(v)]``
    and ``E[f'(u) f'(v)]``; ``subclasses`` as in :func:`register_rule`.
    """

    def rule(layer, k: Kernel, ctx: RuleContext) -> Kernel:
        nngp_fn, dot_fn = fns(layer)
        return transform(k, nngp_fn, dot_fn, layer, ctx)

    rule.__name__ = f"{layer_cls.__name__.lower()}_rule"
    register_rule(layer_cls, rule, subclasses=subclasses)


def _gelu(layer):
    return quadrature_fns(layer.fn, 50) if layer.approximate else gelu_fns()


register_elementwise(L.Relu, lambda layer: abrelu_fns(0.0, 1.0))
register_elementwise(L.LeakyRelu, lambda layer: abrelu_fns(layer.alpha, 1.0))
register_elementwise(L.ABRelu, lambda layer: abrelu_fns(layer.a, layer.b))
register_elementwise(L.Abs, lambda layer: abrelu_fns(-1.0, 1.0))
register_elementwise(L.Erf, lambda layer: erf_fns(layer.a, layer.b, layer.c))
register_elementwise(L.Sin, lambda layer: sin_fns(layer.a, layer.b, layer.c))
register_elementwise(L.Gaussian, lambda layer: gaussian_fns(layer.a, layer.b))
register_elementwise(L.Exp, lambda layer: exp_fns(layer.a, layer.b))
register_elementwise(L.Gelu, _gelu)
register_elementwise(L.Sign, lambda layer: sign_fns())
register_elementwise(L.Tanh, lambda layer: quadrature_fns(layer.fn))
# Quadrature of ``layer.fn`` is right for any subclass that defines its own ``fn``.
register_elementwise(
    L.ElementwiseNumerical, lambda layer: quadrature_fns(layer.fn, layer.deg), subclasses=True
)
register_elementwise(L.ElementwiseLayer, lambda layer: quadrature_fns(layer.fn), subclasses=True)
