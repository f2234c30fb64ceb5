"""Binomial intervals for hallucination rates that stay informative at 0 and 1.

A cell of the size x epochs grid scores ``n`` queries once each (greedy decoding), so
its hallucination count is binomial. The Wald standard error ``sqrt(r (1 - r) / n)``
is 0 when the rate ``r`` is exactly 0 or 1, although ``n`` finite queries never prove
a rate of exactly 0 or 1. The Wilson score interval (Wilson 1927; Brown, Cai &
DasGupta 2001, Eq. 4) inverts the score test instead and keeps a positive width at the
edges; the Agresti-Coull standard error (Agresti & Coull 1998) is the matching
standard error of the shrunken rate at its centre.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np


def _z(level: float, name: str) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name}: level must be in (0, 1), got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def _counts(k, n, name: str) -> tuple[np.ndarray, np.ndarray]:
    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n) or np.any(k != np.round(k)):
        raise ValueError(
            f"{name}: needs integer counts 0 <= k <= n with n >= 1, got k={k.tolist()}, "
            f"n={n.tolist()}"
        )
    return k, n


def wilson_interval(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (Brown, Cai & DasGupta 2001, Eq. 4):

    ``(k + z^2/2) / (n + z^2)  -/+  z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)``

    with ``z`` the standard normal ``(1 + level) / 2`` quantile. It is the set of
    proportions ``p`` that the score test ``|k - n p| <= z sqrt(n p (1 - p))`` does not
    reject. At ``k = 0`` it is ``[0, z^2 / (n + z^2)]`` and at ``k = n``
    ``[n / (n + z^2), 1]``: positive width where the Wald interval has none.

    Args:
        k: successes (here: hallucinated queries), scalar or array.
        n: trials (queries), same shape or broadcastable, each >= 1.
        level: coverage, in ``(0, 1)``.

    Returns:
        ``(low, high)`` as float arrays (0-d for scalar input).

    Raises:
        ValueError: ``level`` outside ``(0, 1)`` or counts not ``0 <= k <= n``, ``n >= 1``.

    Example:
        >>> low, high = wilson_interval(0, 40)
        >>> float(low), round(float(high), 4)
        (0.0, 0.0876)
    """
    z = _z(level, "wilson_interval")
    k, n = _counts(k, n, "wilson_interval")
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * np.sqrt(k * (n - k) / n + z2 / 4)
    # exact edges: the interval touches 0 (k = 0) and 1 (k = n)
    low = np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(k == n, 1.0, np.clip(centre + half, 0.0, 1.0))
    return low, high


def agresti_coull_se(k, n, level: float = 0.95) -> np.ndarray:
    """Standard error of a binomial proportion that stays positive at ``k = 0`` and
    ``k = n`` (Agresti & Coull 1998): ``sqrt(p~ (1 - p~) / n~)`` with ``n~ = n + z^2``
    and ``p~ = (k + z^2 / 2) / n~`` (the Wilson interval's centre).

    Args:
        k: successes, scalar or array.
        n: trials, each >= 1.
        level: the ``z`` of the matching interval, in ``(0, 1)``.

    Returns:
        The standard error (float array, 0-d for scalar input).

    Raises:
        ValueError: as :func:`wilson_interval`.

    Example:
        >>> round(float(agresti_coull_se(0, 40)), 4)
        0.0309
    """
    z = _z(level, "agresti_coull_se")
    k, n = _counts(k, n, "agresti_coull_se")
    n_t = n + z * z
    p_t = (k + z * z / 2) / n_t
    return np.sqrt(p_t * (1 - p_t) / n_t)
