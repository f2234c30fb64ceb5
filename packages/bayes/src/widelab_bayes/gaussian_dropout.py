"""Variational Gaussian dropout: the exact KL, its pathologies, and the Quasi-KL fix.

Hron, Matthews, Ghahramani (2017), "Variational Gaussian dropout is not Bayesian"
(NeurIPS BDL workshop) and (2018) "Variational Bayesian dropout: pitfalls and fixes"
(ICML).

Multiplicative Gaussian noise ``w = theta * (1 + sqrt(alpha) * xi)``, ``xi ~ N(0, 1)``,
gives ``q(w) = N(theta, alpha theta^2)``. With the improper log-uniform prior
``p(w) ∝ 1/|w|``, ``KL(q || p) = -H(q) + E_q log|w| + const`` and ``theta`` cancels:

    KL(alpha) = 1/2 * g(alpha^{-1/2}) + const,   g(mu) = E_xi log (mu + xi)^2.

``(mu + xi)^2`` is non-central chi-squared with one degree of freedom and
non-centrality ``lambda = mu^2``, a Poisson(``mu^2/2``) mixture of central chi-squared
variables with ``1 + 2j`` degrees of freedom, so

    g(mu) = log 2 + sum_j Pois(j; mu^2/2) psi(1/2 + j)
          = log 2 + psi(1/2) + mu^2 2F2(1, 1; 3/2, 2; -mu^2/2)

(``2F2`` is the confluent hypergeometric series that arises from differentiating
Kummer's ``1F1(a; 1/2; mu^2/2)`` in ``a``; equivalently ``g'(mu) = 2 sqrt(2) D(mu/sqrt 2)``
with Dawson's integral ``D``). We normalise the constant so that ``KL -> 0`` as
``alpha -> inf``, as Molchanov et al. (2017) do for their sigmoid fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_PSI_HALF = -0.5772156649015329 - 2.0 * math.log(2.0)  # digamma(1/2)
_G0 = math.log(2.0) + _PSI_HALF  # g(0) = E log xi^2
_SERIES_TERMS = 220
_SERIES_MAX_MU2 = 100.0  # mu^2 above this: asymptotic expansion
# constants of the series: psi(1/2 + j) = psi(1/2) + sum_{k<j} 1/(1/2 + k), and log j!
_J = np.arange(_SERIES_TERMS, dtype=np.float64)
_DIGAMMA_HALF_J = _PSI_HALF + np.concatenate([[0.0], np.cumsum(1.0 / (0.5 + _J[:-1]))])
_LOG_FACT = np.concatenate([[0.0], np.cumsum(np.log(np.maximum(_J[1:], 1.0)))])

# Molchanov, Ashukha, Vetrov (2017), eq. 14.
_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695


def expected_log_square(mu: jax.Array) -> jax.Array:
    """``g(mu) = E_{xi ~ N(0,1)} log (mu + xi)^2``, jit-able and differentiable.

    Hron et al. (2017, 2018): the Poisson-mixture series
    ``log 2 + sum_j e^{-l} l^j / j! psi(1/2 + j)`` with ``l = mu^2 / 2`` for
    ``1e-4 <= mu^2/2``, ``mu^2 <= 100`` (its Taylor expansion below), and the asymptotic series
    ``log mu^2 - sum_k (2k-1)!! / k mu^-2k`` (``k <= 7``) beyond
    (obtained by integrating the asymptotic expansion of ``2 sqrt(2) D(mu / sqrt(2))``).

    Args:
        mu: array of ``mu`` (any shape; only ``|mu|`` matters).

    Returns:
        ``g(mu)`` with the shape of ``mu``.
    """
    mu = jnp.asarray(mu)
    if not jnp.issubdtype(mu.dtype, jnp.floating):
        mu = mu.astype(jnp.zeros(()).dtype)
    mu2 = mu * mu
    small = mu2 <= _SERIES_MAX_MU2
    lam_true = mu2 / 2
    tiny = lam_true < 1e-4
    # series branch (safe values elsewhere so no branch produces NaN gradients)
    lam = jnp.where(small & ~tiny, lam_true, 1.0)
    bshape = (1,) * lam.ndim + (_SERIES_TERMS,)
    j = jnp.asarray(_J, mu.dtype).reshape(bshape)
    log_fact = jnp.asarray(_LOG_FACT, mu.dtype).reshape(bshape)
    psi = jnp.asarray(_DIGAMMA_HALF_J, mu.dtype).reshape(bshape)
    log_pois = -lam[..., None] + j * jnp.log(lam)[..., None] - log_fact
    series = math.log(2.0) + jnp.sum(jnp.exp(log_pois) * psi, -1)
    # near 0: Taylor expansion of the same series, g0 + 2 l - 2/3 l^2 + 8/45 l^3
    taylor = _G0 + lam_true * (2.0 + lam_true * (-2.0 / 3.0 + lam_true * (8.0 / 45.0)))
    series = jnp.where(tiny, taylor, series)
    big = jnp.where(small, 1e4, mu2)
    inv = 1.0 / big
    tail = 26.25 + inv * (189.0 + inv * (1732.5 + inv * 19305.0))
    asym = jnp.log(big) - inv * (1 + inv * (1.5 + inv * (5 + inv * tail)))
    return jnp.where(small, series, asym)


def _concrete(x):
    """``x`` as a numpy array, or None while tracing under jit/grad."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_log_alpha(log_alpha):
    arr = _concrete(log_alpha)
    if arr is not None and np.any(~np.isfinite(arr)):
        raise ValueError(f"log_alpha must be finite, got {log_alpha!r}")
    return jnp.asarray(log_alpha)


def gaussian_dropout_kl(log_alpha: jax.Array) -> jax.Array:
    """Exact ``KL(N(theta, alpha theta^2) || log-uniform)`` up to its infinite constant.

    Hron et al. (2017), Section 4 / Hron et al. (2018), Appendix:
    ``KL(alpha) = 1/2 [g(alpha^{-1/2}) - g(0)]`` with ``g`` from
    :func:`expected_log_square` and the constant fixed so that ``KL -> 0`` as
    ``alpha -> inf`` (the log-uniform prior makes the true constant infinite). It is
    positive and decreasing in ``alpha``: the objective alone pushes ``alpha -> inf``.

    Args:
        log_alpha: ``log alpha`` (any shape, finite).

    Returns:
        The KL (same shape), per weight.

    Raises:
        ValueError: non-finite ``log_alpha`` (when not traced).
    """
    log_alpha = _check_log_alpha(log_alpha)
    mu = jnp.exp(-0.5 * log_alpha)
    return 0.5 * (expected_log_square(mu) - _G0)


def molchanov_kl(log_alpha: jax.Array) -> jax.Array:
    """Molchanov et al. (2017), eq. 14: the sigmoid fit to the same KL.

    ``-KL ~= k1 sigmoid(k2 + k3 log alpha) - 1/2 log(1 + 1/alpha) - k1`` with
    ``k1 = 0.63576, k2 = 1.87320, k3 = 1.48695``.

    Args:
        log_alpha: ``log alpha`` (any shape).

    Returns:
        The approximate KL (same shape).
    """
    log_alpha = _check_log_alpha(log_alpha)
    neg = _K1 * jax.nn.sigmoid(_K2 + _K3 * log_alpha) - 0.5 * jax.nn.softplus(-log_alpha) - _K1
    return -neg


def gaussian_dropout_kl_quadrature(alpha: float) -> float:
    """Reference value of :func:`gaussian_dropout_kl` by adaptive quadrature (scipy).

    Integrates ``1/2 E log(mu + xi)^2`` directly against the standard normal density
    (with the log singularity at ``xi = -mu`` given to ``quad`` as a break point), minus
    the same at ``mu = 0``.

    Args:
        alpha: the noise variance ``alpha > 0``.

    Returns:
        The KL as a float.

    Raises:
        ValueError: ``alpha <= 0``.
    """
    from scipy import integrate, stats

    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    mu = alpha**-0.5

    def f(xi):
        return np.log((mu + xi) ** 2) * stats.norm.pdf(xi)

    parts = [(-np.inf, -mu - 1), (-mu - 1, -mu), (-mu, -mu + 1), (-mu + 1, np.inf)]
    total = sum(integrate.quad(f, a, b, limit=200, epsabs=1e-13, epsrel=1e-12)[0] for a, b in parts)
    return 0.5 * (total - _G0)


class ImproperPosterior(NamedTuple):
    """Truncated normalisers of a posterior under the log-uniform prior.

    Attributes:
        deltas: the cut-offs ``delta`` (decreasing).
        masses: ``Z(delta) = int_{delta < |w| < R} L(w) / |w| dw``.
        slope: fitted ``dZ / d(-log delta)`` over the smallest cut-offs.
        predicted_slope: ``2 L(0)``, the divergence rate of the normaliser.
    """

    deltas: np.ndarray
    masses: np.ndarray
    slope: float
    predicted_slope: float


def log_uniform_posterior_mass(
    likelihood: Callable[[float], float],
    deltas=(1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8),
    radius: float = 50.0,
) -> ImproperPosterior:
    """Show numerically that the log-uniform prior gives an improper posterior.

    Hron et al. (2017), Section 3: for a likelihood with ``L(0) > 0`` the unnormalised
    posterior ``L(w)/|w|`` is not integrable at ``w = 0``; the truncated normaliser grows
    like ``2 L(0) log(1/delta)``. We integrate it by quadrature for shrinking ``delta``.

    Args:
        likelihood: ``w -> L(w) >= 0`` (a scalar function; e.g. a Gaussian likelihood of a
            one-weight regression).
        deltas: decreasing positive cut-offs.
        radius: outer truncation ``R`` (the tails are integrable).

    Returns:
        An :class:`ImproperPosterior`.

    Raises:
        ValueError: non-positive or non-decreasing cut-offs, or ``L(0) <= 0``.
    """
    from scipy import integrate

    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 1 or deltas.size < 2 or np.any(deltas <= 0) or np.any(np.diff(deltas) >= 0):
        raise ValueError(f"deltas must be >= 2 strictly decreasing positive numbers, got {deltas}")
    if not 0 < deltas[0] < radius:
        raise ValueError(f"need 0 < delta < radius, got delta={deltas[0]}, radius={radius}")
    l0 = float(likelihood(0.0))
    if not l0 > 0:
        raise ValueError(f"the demonstration needs L(0) > 0, got {l0}")

    def mass(delta):
        # substitute w = +-exp(s): dw/|w| = ds
        def f(s):
            w = math.exp(s)
            return float(likelihood(w)) + float(likelihood(-w))

        return integrate.quad(f, math.log(delta), math.log(radius), limit=400)[0]

    masses = np.array([mass(d) for d in deltas])
    x = -np.log(deltas[-3:])
    slope = float(np.polyfit(x, masses[-3:], 1)[0])
    return ImproperPosterior(deltas, masses, slope, 2.0 * l0)


# --------------------------------------------------------------------------------------
# Additive reparameterisation: spurious minima on y = w1 w2 x + noise
# --------------------------------------------------------------------------------------


def _data_term(mean, var, x, y, noise_var):
    """Expected negative log-likelihood (up to a constant) of ``y = w1 w2 x + e``."""
    ew = mean[0] * mean[1]
    ew2 = (mean[0] ** 2 + var[0]) * (mean[1] ** 2 + var[1])
    return jnp.sum(y**2 - 2 * x * y * ew + x**2 * ew2) / (2 * noise_var)


def gaussian_dropout_objective(
    params: jax.Array, x: jax.Array, y: jax.Array, *, noise_var: float = 1.0, additive: bool
) -> jax.Array:
    """Negative ELBO of variational Gaussian dropout on the two-weight model ``y = w1 w2 x``.

    Hron et al. (2017), Section 5: with ``q(w_i) = N(theta_i, sigma_i^2)`` the objective is
    ``E_q[-log p(y | w)] + sum_i KL(alpha_i)``, ``alpha_i = sigma_i^2 / theta_i^2``, which is
    available in closed form here. The *multiplicative* parameterisation optimises
    ``(theta, log alpha)``; the *additive* one of Molchanov et al. (2017) optimises
    ``(theta, log sigma)``. The KL then behaves like ``theta^2 / (2 sigma^2)`` near
    ``theta = 0``, which turns the saddle at ``theta = 0`` into a local minimum.

    Args:
        params: ``(4,)`` = ``(theta_1, theta_2, s_1, s_2)`` with ``s = log alpha``
            (multiplicative) or ``s = log sigma`` (additive).
        x: ``(n,)`` inputs.
        y: ``(n,)`` targets.
        noise_var: observation noise variance (> 0).
        additive: choose the parameterisation.

    Returns:
        The objective (a scalar).
    """
    theta, s = params[:2], params[2:]
    if additive:  # alpha^{-1/2} = |theta| / sigma; g is even in mu
        var = jnp.exp(2 * s)
        mu = theta * jnp.exp(-s)
    else:
        var = jnp.exp(s) * theta**2
        mu = jnp.exp(-0.5 * s)
    kl = jnp.sum(0.5 * (expected_log_square(mu) - _G0))
    return _data_term(theta, var, x, y, noise_var) + kl


class SpuriousMinimum(NamedTuple):
    """Outcome of :func:`additive_spurious_minimum`.

    Attributes:
        start: the shared starting point ``(theta_1, theta_2, sigma_1, sigma_2)``.
        multiplicative: final ``(theta, log alpha)`` and objective.
        additive: final ``(theta, log sigma)`` and objective.
        additive_hessian_eigs: eigenvalues of the additive objective's Hessian in
            ``theta`` at its end point (all positive: a local minimum).
    """

    start: np.ndarray
    multiplicative: tuple[np.ndarray, float]
    additive: tuple[np.ndarray, float]
    additive_hessian_eigs: np.ndarray


def additive_spurious_minimum(
    *,
    slope: float = 1.0,
    n: int = 20,
    start_theta: float = 0.05,
    start_sigma: float = 0.02,
    steps: int = 4000,
    lr: float = 0.01,
) -> SpuriousMinimum:
    """Optimise both parameterisations from the same start on ``y = slope * x``.

    Hron et al. (2017), Section 5: with small initial means, gradient descent in the
    additive parameterisation stalls at ``theta = 0`` (a minimum created by the
    reparameterisation, with a worse objective), while the multiplicative one, from the
    same distribution ``q``, escapes the saddle and fits the data.

    Args:
        slope: the true product ``w1 w2`` (nonzero).
        n: number of data points (``x`` on a grid in ``[-1, 1]``).
        start_theta: initial ``theta_1 = theta_2``.
        start_sigma: initial ``sigma_1 = sigma_2``.
        steps: Adam steps.
        lr: Adam learning rate.

    Returns:
        A :class:`SpuriousMinimum`.

    Raises:
        ValueError: non-positive sizes or scales.
    """
    import optax

    if n < 2 or steps < 1 or lr <= 0 or start_sigma <= 0 or start_theta == 0 or slope == 0:
        raise ValueError(
            "need n >= 2, steps >= 1, lr > 0, start_sigma > 0, start_theta != 0 and slope != 0"
        )
    x = jnp.linspace(-1.0, 1.0, n)
    y = slope * x
    th = jnp.full((2,), start_theta)
    sig = jnp.full((2,), start_sigma)
    starts = {
        False: jnp.concatenate([th, jnp.log(sig**2 / th**2)]),
        True: jnp.concatenate([th, jnp.log(sig)]),
    }
    out = {}
    opt = optax.adam(lr)
    for additive, p0 in starts.items():
        loss = lambda p, a=additive: gaussian_dropout_objective(p, x, y, additive=a)

        @jax.jit
        def fit(p0, loss=loss):
            def step(carry, _):
                p, st = carry
                upd, st = opt.update(jax.grad(loss)(p), st)
                return (optax.apply_updates(p, upd), st), None

            (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), None, length=steps)
            return p, loss(p)

        p, val = fit(p0)
        out[additive] = (np.asarray(p), float(val))
    p_add = jnp.asarray(out[True][0])
    hess = jax.jit(
        jax.hessian(
            lambda t: gaussian_dropout_objective(
                jnp.concatenate([t, p_add[2:]]), x, y, additive=True
            )
        )
    )(p_add[:2])
    return SpuriousMinimum(
        np.array([start_theta, start_theta, start_sigma, start_sigma]),
        out[False],
        out[True],
        np.linalg.eigvalsh(np.asarray(hess)),
    )


# --------------------------------------------------------------------------------------
# Quasi-KL between a degenerate and a full Gaussian
# --------------------------------------------------------------------------------------


def qkl_degenerate_gaussian(
    mean_q: jax.Array, basis: jax.Array, variances: jax.Array, mean_p: jax.Array, cov_p: jax.Array
) -> jax.Array:
    """Quasi-KL of a rank-``r`` Gaussian ``q`` from a full Gaussian ``p``.

    Hron et al. (2018), Section 5: ``QKL(q || p) = int log(dq/dH^r - log p) dq`` with the
    density of ``q`` taken against the ``r``-dimensional Hausdorff measure of its support.
    For ``q = N(m, U diag(lam) U^T)`` with orthonormal ``U`` (``d x r``) and
    ``p = N(m_p, S)``:

        QKL = -r/2 log(2 pi e) - 1/2 sum log lam
              + d/2 log(2 pi) + 1/2 log det S + 1/2 tr(S^-1 U diag(lam) U^T)
              + 1/2 (m - m_p)^T S^-1 (m - m_p).

    Args:
        mean_q: ``(d,)`` mean of ``q``.
        basis: ``(d, r)`` orthonormal columns spanning ``q``'s support.
        variances: ``(r,)`` positive variances of ``q`` along those columns.
        mean_p: ``(d,)`` mean of ``p``.
        cov_p: ``(d, d)`` positive-definite covariance of ``p``.

    Returns:
        The QKL (a scalar).

    Raises:
        ValueError: mismatched shapes, non-orthonormal basis, non-positive variances.
    """
    d = cov_p.shape[0]
    if cov_p.shape != (d, d) or mean_q.shape != (d,) or mean_p.shape != (d,):
        raise ValueError(
            f"shapes do not match: mean_q {mean_q.shape}, mean_p {mean_p.shape}, cov_p {cov_p.shape}"
        )
    if basis.ndim != 2 or basis.shape[0] != d or variances.shape != (basis.shape[1],):
        raise ValueError(
            f"basis must be (d, r) and variances (r,): {basis.shape}, {variances.shape}"
        )
    r = basis.shape[1]
    basis_np, var_np = _concrete(basis), _concrete(variances)
    if basis_np is not None and var_np is not None:
        if not np.allclose(basis_np.T @ basis_np, np.eye(r), atol=1e-4):
            raise ValueError("basis columns must be orthonormal (U^T U = I)")
        if np.any(var_np <= 0):
            raise ValueError(f"variances must be positive, got {variances}")
    chol = jnp.linalg.cholesky(cov_p)
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    solve = lambda b: jax.scipy.linalg.cho_solve((chol, True), b)
    dm = mean_q - mean_p
    trace = jnp.sum((basis * variances[None, :]) * solve(basis))
    return (
        -0.5 * r * jnp.log(2 * jnp.pi * jnp.e)
        - 0.5 * jnp.sum(jnp.log(variances))
        + 0.5 * d * jnp.log(2 * jnp.pi)
        + 0.5 * logdet
        + 0.5 * trace
        + 0.5 * dm @ solve(dm)
    )


class QKLOptimum(NamedTuple):
    """The QKL-optimal rank-``r`` approximation of ``N(m, S)``.

    Attributes:
        mean: equals ``m``.
        basis: ``(d, r)`` the top-``r`` eigenvectors of ``S`` (principal components).
        variances: ``(r,)`` the top-``r`` eigenvalues.
        value: ``QKL = 1/2 sum_{i > r} log(2 pi lam_i)``.
    """

    mean: jax.Array
    basis: jax.Array
    variances: jax.Array
    value: jax.Array


def qkl_optimal_degenerate(mean_p: jax.Array, cov_p: jax.Array, rank: int) -> QKLOptimum:
    """Minimiser of :func:`qkl_degenerate_gaussian` over rank-``r`` Gaussians.

    Hron et al. (2018), Section 5.1: for fixed ``U`` the optimal variances are
    ``diag((U^T S^-1 U)^-1)`` (exactly, when ``U`` is an eigenbasis), and the remaining
    objective ``1/2 log det(U^T S^-1 U)`` is minimised by the top-``r`` principal
    components of ``S``; the minimum is ``1/2 sum_{i > r} log(2 pi lam_i)``.

    Args:
        mean_p: ``(d,)`` mean of ``p``.
        cov_p: ``(d, d)`` covariance of ``p``.
        rank: ``1 <= r <= d``.

    Returns:
        A :class:`QKLOptimum`.

    Raises:
        ValueError: a rank outside ``[1, d]`` or a non-square covariance.
    """
    d = cov_p.shape[0]
    if cov_p.shape != (d, d):
        raise ValueError(f"cov_p must be square, got {cov_p.shape}")
    if not 1 <= int(rank) <= d:
        raise ValueError(f"rank must be in [1, {d}], got {rank}")
    lam, vec = jnp.linalg.eigh(cov_p)
    lam, vec = lam[::-1], vec[:, ::-1]
    value = 0.5 * jnp.sum(jnp.log(2 * jnp.pi * lam[rank:]))
    return QKLOptimum(jnp.asarray(mean_p), vec[:, :rank], lam[:rank], value)
