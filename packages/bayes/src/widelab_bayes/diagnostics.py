"""Convergence diagnostics: rank-normalised ESS (bulk, tail) and R-hat, in function space.

Vehtari, Gelman, Simpson, Carpenter, Buerkner 2021, "Rank-normalization, folding, and
localization: an improved R-hat for assessing convergence of MCMC" (Bayesian
Analysis). Draws are arrays of shape ``(chains, draws)`` (or ``(chains, draws, m)``
for ``m`` quantities at once). Hron et al. 2022 measure ESS in function space: on fixed
random projections of the network's test-set predictions; :func:`random_projections`
makes such projections and :func:`function_space_ess` summarises them.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def _as_draws(draws) -> np.ndarray:
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"draws must have shape (chains, draws) or (chains, draws, m), got {x.shape}"
        )
    if x.shape[1] < 4:
        raise ValueError(f"need at least 4 draws per chain, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"draws contain {int(np.sum(~np.isfinite(x)))} non-finite values")
    return x


def _split(x: np.ndarray) -> np.ndarray:
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _rank_normalise(x: np.ndarray) -> np.ndarray:
    c, n = x.shape[:2]
    flat = x.reshape(c * n, -1)
    r = stats.rankdata(flat, axis=0, method="average")
    z = special.ndtri((r - 0.375) / (c * n + 0.25))
    return z.reshape(x.shape)


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of ``(chains, draws, m)`` by Geyer's initial monotone sequence (Stan's rule).

    ``rho_t = 1 - (W - mean_c acov_c(t)) / var_plus`` with ``var_plus = W (n-1)/n + B/n``;
    sums of consecutive pairs are truncated at the first negative one and made
    monotone; ``ESS = C n / (-1 + 2 sum_t rho_t)`` (Vehtari et al. 2021, eqs. 10-11).
    """
    c, n, m = x.shape
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n  # (c, n, m)
    chain_var = acov[:, 0] * n / (n - 1.0)  # (c, m)
    W = chain_var.mean(axis=0)
    var_plus = W * (n - 1.0) / n
    if c > 1:
        var_plus = var_plus + x.mean(axis=1).var(axis=0, ddof=1)
    out = np.zeros(m)
    for j in range(m):
        if var_plus[j] <= 0 or W[j] <= 0:
            out[j] = 0.0  # a constant chain carries no information
            continue
        rho = 1.0 - (W[j] - acov[:, :, j].mean(axis=0)) / var_plus[j]
        rho[0] = 1.0
        n_even = n - n % 2
        pairs = rho[0:n_even:2] + rho[1:n_even:2]
        neg = np.nonzero(pairs <= 0)[0]
        pairs = pairs[: neg[0]] if neg.size else pairs
        pairs = np.minimum.accumulate(pairs)
        tau = -1.0 + 2.0 * pairs.sum()
        tau = max(tau, 1.0 / np.log10(c * n))
        out[j] = c * n / tau
    return out


def _per_quantity(fn, draws):
    x = _as_draws(draws)
    squeeze = x.ndim == 2
    if squeeze:
        x = x[:, :, None]
    out = fn(x)
    return float(out[0]) if squeeze else out


def ess_bulk(draws) -> float | np.ndarray:
    """Bulk effective sample size: ESS of rank-normalised split chains.

    Vehtari et al. 2021, Sec. 3.2 (rank normalisation ``z = Phi^{-1}((r - 3/8) /
    (S + 1/4))``) with Geyer's initial monotone sequence for the autocorrelations.

    Args:
        draws: ``(chains, draws)`` or ``(chains, draws, m)``.

    Returns:
        A float, or an ``(m,)`` array for several quantities.

    Raises:
        ValueError: wrong rank, fewer than 4 draws, or non-finite draws.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(4, 500))
        >>> 1500 < ess_bulk(x) < 2600
        True
    """
    return _per_quantity(lambda x: _ess(_rank_normalise(_split(x))), draws)


def ess_tail(draws) -> float | np.ndarray:
    """Tail effective sample size: the smaller ESS of the 5% and 95% quantile indicators.

    Vehtari et al. 2021, Sec. 4.3.

    Args:
        draws: ``(chains, draws)`` or ``(chains, draws, m)``.

    Returns:
        A float, or an ``(m,)`` array.

    Raises:
        ValueError: wrong rank, fewer than 4 draws, or non-finite draws.
    """

    def fn(x):
        s = _split(x)
        lo = np.quantile(x, 0.05, axis=(0, 1))
        hi = np.quantile(x, 0.95, axis=(0, 1))
        return np.minimum(_ess((s <= lo).astype(float)), _ess((s >= hi).astype(float)))

    return _per_quantity(fn, draws)


def _rhat(x):
    c, n = x.shape[:2]
    W = x.var(axis=1, ddof=1).mean(axis=0)
    B_over_n = x.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(((n - 1.0) / n * W + B_over_n) / W)


def rhat(draws) -> float | np.ndarray:
    """Rank-normalised split R-hat: max of the bulk and the folded (tail) versions.

    Vehtari et al. 2021, Sec. 4.2: ``R = sqrt(var_plus / W)`` on rank-normalised split
    chains and on the rank-normalised ``|x - median|``.

    Args:
        draws: ``(chains, draws)`` or ``(chains, draws, m)``.

    Returns:
        A float, or an ``(m,)`` array; values near 1 indicate convergence.

    Raises:
        ValueError: wrong rank, fewer than 4 draws, or non-finite draws.
    """

    def fn(x):
        s = _split(x)
        folded = np.abs(s - np.median(x, axis=(0, 1)))
        return np.maximum(_rhat(_rank_normalise(s)), _rhat(_rank_normalise(folded)))

    return _per_quantity(fn, draws)


def random_projections(key_seed: int, n_outputs: int, num: int) -> np.ndarray:
    """Fixed random unit directions for function-space diagnostics.

    Args:
        key_seed: integer seed (the projections must stay fixed across samplers).
        n_outputs: length of the flattened test predictions (``n_test * k``).
        num: number of projections.

    Returns:
        ``(n_outputs, num)`` array with unit-norm columns.
    """
    rng = np.random.default_rng(key_seed)
    v = rng.normal(size=(n_outputs, num))
    return v / np.linalg.norm(v, axis=0, keepdims=True)


def function_space_ess(projections) -> dict[str, float | np.ndarray]:
    """ESS and R-hat of stored function-space projections (Hron et al. 2022, Sec. 6).

    Args:
        projections: ``(chains, draws, m)`` projections of test-set predictions.

    Returns:
        ``{"bulk": (m,), "tail": (m,), "rhat": (m,), "min_bulk", "median_bulk",
        "min_tail", "max_rhat"}``.
    """
    bulk = ess_bulk(projections)
    tail = ess_tail(projections)
    r = rhat(projections)
    return {
        "bulk": bulk,
        "tail": tail,
        "rhat": r,
        "min_bulk": float(np.min(bulk)),
        "median_bulk": float(np.median(bulk)),
        "min_tail": float(np.min(tail)),
        "max_rhat": float(np.max(r)),
    }
