"""Maximum mean discrepancy between network function samples and a Gaussian process.

Gretton, Borgwardt, Rasch, Schoelkopf, Smola 2012, "A kernel two-sample test" (JMLR),
Lemma 6, eq. 3 (unbiased MMD^2); used by Matthews, Rowland, Hron, Turner, Ghahramani
2018, "Gaussian process behaviour in wide deep neural networks" (ICLR), Sec. 5, to
measure how close finite networks' function distributions are to their NNGP limit.
Everything here uses the RBF kernel ``k(a, b) = exp(-|a - b|^2 / (2 l^2))``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core.validate import require_finite, require_float, require_int


def _check_finite(name, a):
    """NaN/inf is an error for concrete arrays (traced ones, under vmap/jit, pass)."""
    if not isinstance(a, jax.core.Tracer):
        require_finite(a, name)


def _check_samples(name, a):
    a = jnp.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (num_samples, dim), got {tuple(a.shape)}")
    if a.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples for unbiased MMD^2, got {a.shape[0]}")
    _check_finite(name, a)
    return a


def _sq_dists(a, b):
    aa = jnp.sum(a * a, axis=1)[:, None]
    bb = jnp.sum(b * b, axis=1)[None, :]
    return jnp.maximum(aa + bb - 2.0 * a @ b.T, 0.0)


def median_heuristic(x, y) -> float:
    """Lengthscale ``l = sqrt(median |a - b|^2 / 2)`` over the pooled samples."""
    z = jnp.concatenate([jnp.asarray(x), jnp.asarray(y)], axis=0)
    d = np.asarray(_sq_dists(z, z))
    iu = np.triu_indices(d.shape[0], 1)
    return float(math.sqrt(max(np.median(d[iu]), 1e-12) / 2.0))


def mmd2_unbiased(x, y, lengthscale: float) -> jax.Array:
    """Unbiased MMD^2 with an RBF kernel (Gretton et al. 2012, eq. 3).

    ``1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
    - 2/(mn) sum_{i, j} k(x_i, y_j)``; can be negative when the distributions agree.

    Args:
        x: ``(m, D)`` samples of the first distribution.
        y: ``(n, D)`` samples of the second.
        lengthscale: RBF lengthscale ``l > 0``.

    Returns:
        Scalar estimate of MMD^2.

    Raises:
        ValueError: wrong ranks, different dims, fewer than 2 samples, NaN or inf in a
            sample (checked outside ``jit``/``vmap`` only), bad lengthscale.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 2.0
        >>> float(mmd2_unbiased(a, b, 1.0)) > 0.2
        True
    """
    x = _check_samples("x", x)
    y = _check_samples("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y differ in dimension: {tuple(x.shape)} vs {tuple(y.shape)}")
    if not (lengthscale > 0 and math.isfinite(lengthscale)):
        raise ValueError(f"lengthscale must be positive and finite, got {lengthscale}")
    m, n = x.shape[0], y.shape[0]
    g = -0.5 / lengthscale**2
    kxx = jnp.exp(g * _sq_dists(x, x))
    kyy = jnp.exp(g * _sq_dists(y, y))
    kxy = jnp.exp(g * _sq_dists(x, y))
    sxx = (jnp.sum(kxx) - jnp.trace(kxx)) / (m * (m - 1))
    syy = (jnp.sum(kyy) - jnp.trace(kyy)) / (n * (n - 1))
    return sxx + syy - 2.0 * jnp.mean(kxy)


def mmd2_jackknife_se(x, y, lengthscale: float) -> float:
    """Jackknife standard error of :func:`mmd2_unbiased` for paired samples (m = n).

    Leaves out one pair ``(x_i, y_i)`` at a time; each leave-one-out estimate comes from
    row sums of the three kernel matrices, so the cost is that of one estimate. The
    jackknife variance ``(m - 1)/m sum_i (theta_(i) - mean theta_(.))^2`` is consistent for
    U-statistics (Arvesen 1969, "Jackknifing U-statistics", Ann. Math. Statist. 40(6);
    Efron and Stein 1981, eq. 1.2). It is never biased low (the Efron-Stein inequality); when
    the two distributions are equal (a degenerate U-statistic) it is conservative, by about
    40% at m = 50 in two dimensions.

    Args:
        x: ``(m, D)`` samples of the first distribution.
        y: ``(m, D)`` samples of the second (as many as ``x``).
        lengthscale: RBF lengthscale ``l > 0``.

    Returns:
        The standard error of the unbiased MMD^2 estimate.

    Raises:
        ValueError: bad shapes, ``x`` and ``y`` of different sizes, fewer than 3 pairs, or
            a bad lengthscale.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(size=(100, 2)), rng.normal(size=(100, 2))
        >>> 0.0 < mmd2_jackknife_se(a, b, 1.0) < 0.05
        True
    """
    x = np.asarray(_check_samples("x", x), np.float64)
    y = np.asarray(_check_samples("y", y), np.float64)
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape for the paired jackknife, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    m = x.shape[0]
    if m < 3:
        raise ValueError(f"need at least 3 pairs for the jackknife, got {m}")
    if not (lengthscale > 0 and math.isfinite(lengthscale)):
        raise ValueError(f"lengthscale must be positive and finite, got {lengthscale}")

    def gram(a, b):
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.exp(-0.5 * np.maximum(d, 0.0) / lengthscale**2)

    kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
    np.fill_diagonal(kxx, 0.0)
    np.fill_diagonal(kyy, 0.0)
    sxx, syy, sxy = kxx.sum(), kyy.sum(), kxy.sum()
    loo_xx = sxx - 2.0 * kxx.sum(1)
    loo_yy = syy - 2.0 * kyy.sum(1)
    loo_xy = sxy - kxy.sum(1) - kxy.sum(0) + np.diag(kxy)
    n1 = m - 1
    theta = (loo_xx + loo_yy) / (n1 * (n1 - 1)) - 2.0 * loo_xy / n1**2
    return float(math.sqrt(n1 / m * np.sum((theta - theta.mean()) ** 2)))


def _expected_rbf(mean_diff, cov_sum, lengthscale):
    d = mean_diff.shape[0]
    l2 = lengthscale**2
    eye = jnp.eye(d, dtype=cov_sum.dtype)
    _, logdet = jnp.linalg.slogdet(eye + cov_sum / l2)
    quad = mean_diff @ jnp.linalg.solve(cov_sum + l2 * eye, mean_diff)
    return jnp.exp(-0.5 * logdet - 0.5 * quad)


def mmd2_gaussians(mean1, cov1, mean2, cov2, lengthscale: float) -> jax.Array:
    """Closed-form population MMD^2 between two Gaussians under the RBF kernel.

    For independent ``a ~ N(m_a, S_a)``, ``b ~ N(m_b, S_b)``:
    ``E k(a, b) = det(I + (S_a + S_b) / l^2)^{-1/2} exp(-1/2 d^T (S_a + S_b + l^2 I)^{-1} d)``
    with ``d = m_a - m_b``; ``MMD^2 = E k(a, a') + E k(b, b') - 2 E k(a, b)``
    (Gretton et al. 2012, Lemma 6, population form). Used to calibrate the estimator.

    Args:
        mean1, cov1: mean ``(D,)`` and covariance ``(D, D)`` of the first Gaussian.
        mean2, cov2: the second Gaussian.
        lengthscale: RBF lengthscale.

    Returns:
        Scalar MMD^2.

    Raises:
        ValueError: inconsistent shapes.
    """
    mean1, mean2 = jnp.asarray(mean1), jnp.asarray(mean2)
    cov1, cov2 = jnp.asarray(cov1), jnp.asarray(cov2)
    d = mean1.shape[0]
    for name, c in (("cov1", cov1), ("cov2", cov2)):
        if c.shape != (d, d):
            raise ValueError(f"{name} must have shape {(d, d)}, got {tuple(c.shape)}")
    if mean2.shape != (d,):
        raise ValueError(f"mean2 must have shape {(d,)}, got {tuple(mean2.shape)}")
    zero = jnp.zeros_like(mean1)
    e11 = _expected_rbf(zero, 2.0 * cov1, lengthscale)
    e22 = _expected_rbf(zero, 2.0 * cov2, lengthscale)
    e12 = _expected_rbf(mean1 - mean2, cov1 + cov2, lengthscale)
    return e11 + e22 - 2.0 * e12


def gp_samples(key: jax.Array, cov, num: int, mean=None, jitter: float = 1e-6) -> jax.Array:
    """``num`` draws ``(num, n)`` from ``N(mean, cov)`` (eigen-decomposition).

    Eigenvalues that are negative only by round-off are clipped to zero; ``jitter`` is
    added to every eigenvalue.

    Args:
        key: a ``jax.random`` key.
        cov: ``(n, n)`` symmetric positive semi-definite covariance.
        num: number of draws (``>= 1``).
        mean: optional ``(n,)`` mean.
        jitter: non-negative amount added to the eigenvalues.

    Returns:
        ``(num, n)`` draws.

    Raises:
        ValueError: ``cov`` not square, not finite, not symmetric or not positive
            semi-definite (smallest eigenvalue below ``-10 n eps`` times the largest
            magnitude); ``num < 1``; a bad ``mean`` or ``jitter``.
    """
    require_int(num, "num", min=1)
    require_float(jitter, "jitter", min=0)
    cov = jnp.asarray(cov)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be a square (n, n) matrix, got shape {tuple(cov.shape)}")
    if not bool(jnp.all(jnp.isfinite(cov))):
        raise ValueError("cov contains non-finite entries")
    if mean is not None and jnp.shape(mean) != (cov.shape[0],):
        raise ValueError(f"mean must have shape ({cov.shape[0]},), got {jnp.shape(mean)}")
    lam, V = jnp.linalg.eigh(0.5 * (cov + cov.T))
    scale = max(float(jnp.max(jnp.abs(cov))), float(np.finfo(cov.dtype).tiny))
    tol = 10 * max(cov.shape[0], 10) * float(np.finfo(cov.dtype).eps) * scale
    asym = float(jnp.max(jnp.abs(cov - cov.T)))
    if asym > tol:
        raise ValueError(f"cov must be symmetric, got |cov - cov.T| up to {asym:.3g}")
    if float(lam[0]) < -tol:
        raise ValueError(
            f"cov must be positive semi-definite, got smallest eigenvalue {float(lam[0]):.3g} "
            f"(largest {float(lam[-1]):.3g})"
        )
    root = V * jnp.sqrt(jnp.maximum(lam, 0.0) + jitter)[None, :]
    z = jax.random.normal(key, (num, cov.shape[0]), cov.dtype)
    out = z @ root.T
    return out if mean is None else out + jnp.asarray(mean)[None, :]


def mmd2_to_gp(
    key: jax.Array, samples, gp_cov, *, lengthscale: float | None = None, num_gp: int | None = None
) -> tuple[float, float]:
    """Unbiased MMD^2 between function samples and a zero-mean GP with covariance ``gp_cov``.

    Matthews et al. 2018, Sec. 5: finite-network function values at ``n`` inputs are
    compared with draws of the limiting GP at the same inputs.

    Args:
        key: a ``jax.random`` key for the GP draws.
        samples: ``(m, n)`` function values (one row per network draw).
        gp_cov: ``(n, n)`` GP covariance (e.g. the NNGP kernel).
        lengthscale: RBF lengthscale; the median heuristic when ``None``.
        num_gp: number of GP draws (default ``m``).

    Returns:
        ``(mmd2, lengthscale)``.

    Raises:
        ValueError: shapes of ``samples`` and ``gp_cov`` disagree.
    """
    samples = _check_samples("samples", samples)
    gp_cov = jnp.asarray(gp_cov, samples.dtype)
    if gp_cov.shape != (samples.shape[1], samples.shape[1]):
        raise ValueError(
            f"gp_cov has shape {tuple(gp_cov.shape)} but samples have {samples.shape[1]} "
            f"function values each (shape {tuple(samples.shape)})"
        )
    g = gp_samples(key, gp_cov, num_gp or samples.shape[0])
    ls = median_heuristic(samples, g) if lengthscale is None else float(lengthscale)
    return float(mmd2_unbiased(samples, g, ls)), ls


def relu_nngp(x, depth: int, W_std: float, b_std: float) -> jax.Array:
    """NNGP covariance of ``serial(Dense, Relu) x depth + Dense`` (NTK param, ReLU).

    The arc-cosine recursion (Cho & Saul 2009; Lee et al. 2018, eq. 11):
    ``K_0 = W^2 x x^T / d + b^2``, ``K_{l+1} = W^2 sqrt(k_ii k_jj) (sin t + (pi - t)
    cos t) / (2 pi) + b^2`` with ``cos t = k_ij / sqrt(k_ii k_jj)``. A small closed form
    kept here so the report needs no sibling package.

    Args:
        x: ``(n, d)`` inputs.
        depth: number of hidden ReLU layers (``>= 1``).
        W_std, b_std: the (shared) weight and bias scales of every Dense layer.

    Returns:
        ``(n, n)`` covariance of the network output.

    Raises:
        ValueError, TypeError: ``x`` not ``(n, d)`` with ``d >= 1`` or not finite,
            ``depth`` not an integer ``>= 1``, ``W_std`` or ``b_std`` not finite.
    """
    require_int(depth, "depth", min=1)
    require_float(W_std, "W_std")
    require_float(b_std, "b_std")
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (n, d) with d >= 1, got {tuple(x.shape)}")
    _check_finite("x", x)
    K = W_std**2 * (x @ x.T) / x.shape[1] + b_std**2
    for _ in range(int(depth)):
        d = jnp.sqrt(jnp.diag(K))
        norm = d[:, None] * d[None, :]
        c = jnp.clip(K / norm, -1.0, 1.0)
        t = jnp.arccos(c)
        K = W_std**2 * norm * (jnp.sin(t) + (jnp.pi - t) * c) / (2 * jnp.pi) + b_std**2
    return K


def network_prior_samples(key: jax.Array, net, x, num: int) -> jax.Array:
    """Function values of ``num`` prior networks at ``x``: ``(num, n * k)``."""
    x = jnp.asarray(x)

    def one(k):
        _, params = net.init(k, tuple(x.shape))
        return net.apply(params, x).reshape(-1)

    return jax.vmap(one)(jax.random.split(key, num))
