"""Hardmax (``tau = 0``) exposure games on small instances, by discretisation.

At ``tau = 0`` each consumer is shown only the producers with the highest score (ties
split evenly), so utilities are piecewise constant and gradient methods do not apply
(Hron et al. 2023, Section 2). On small instances we restrict every producer to a finite
set of candidate directions; the result is a finite ``n``-player game whose payoff
tensor can be enumerated, and whose pure Nash equilibria are exactly the profiles where no
player gains by switching candidate (checked against every alternative).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from .game import ExposureGame, _check_matrix, _check_nonzero_rows, check_profile, exposure_numpy

MAX_PROFILES = 2_000_000


def circle_candidates(k: int, offset: float = 0.0) -> np.ndarray:
    """``k`` equally spaced unit vectors on the circle ``S^1`` (angles ``offset + 2 pi j/k``)."""
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    a = offset + 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _hardmax_exposure_np(scores: np.ndarray, tie_tol: float) -> np.ndarray:
    top = scores.max(axis=-1, keepdims=True)
    win = (scores >= top - tie_tol).astype(np.float64)
    return win / win.sum(axis=-1, keepdims=True)


def payoff_tensor(
    game: ExposureGame, candidates, *, tie_tol: float = 1e-9, chunk: int = 4096
) -> np.ndarray:
    """Utilities of the discretised hardmax game for every pure profile.

    Hron et al. (2023), Eq. 1 at ``tau = 0``: ``u_i = E_c[1{i in argmax_j <c, s_j>} /
    |argmax|]``, evaluated for every profile of candidate indices.

    Args:
        game: the exposure game (``tau`` is ignored: hardmax is used).
        candidates: ``(K, d)`` candidate directions (normalised here).
        tie_tol: score difference treated as a tie.
        chunk: profiles evaluated per batch (bounds memory).

    Returns:
        ``(K,) * n + (n,)`` array: ``T[k_1, ..., k_n, i]`` is producer ``i``'s utility.

    Raises:
        ValueError: bad candidates or too many profiles (``K**n`` above 2,000,000).
    """
    c = _check_matrix(candidates, "candidates").astype(np.float64)
    _check_nonzero_rows(c, "candidates")
    if c.shape[1] != game.dim:
        raise ValueError(f"candidates have dimension {c.shape[1]}, the demand {game.dim}")
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    k, n = c.shape[0], game.n_producers
    if k**n > MAX_PROFILES:
        raise ValueError(f"{k}**{n} = {k**n} profiles is too many to enumerate ({MAX_PROFILES})")
    users = np.asarray(game.users, np.float64)
    w = np.asarray(game.weights, np.float64)
    scores = users @ c.T  # (m, K)
    idx = np.array(list(itertools.product(range(k), repeat=n)), dtype=np.int64).reshape(-1, n)
    out = np.empty((idx.shape[0], n))
    for lo in range(0, idx.shape[0], chunk):
        blk = idx[lo : lo + chunk]
        sc = scores[:, blk]  # (m, B, n)
        out[lo : lo + chunk] = np.einsum("m,mbn->bn", w, _hardmax_exposure_np(sc, tie_tol))
    return out.reshape((k,) * n + (n,))


class FiniteGameAnalysis(NamedTuple):
    """Pure-strategy analysis of a finite game given by its payoff tensor.

    Attributes:
        equilibria: ``(E, n)`` candidate indices of every pure Nash equilibrium.
        gains: ``(K,) * n`` array, the largest gain any player gets by switching
            candidate at each profile (0 exactly at pure equilibria).
        min_gain: the smallest entry of ``gains`` (positive iff no pure equilibrium).
    """

    equilibria: np.ndarray
    gains: np.ndarray
    min_gain: float


def pure_equilibria(payoffs: np.ndarray, *, atol: float = 1e-12) -> FiniteGameAnalysis:
    """All pure Nash equilibria of a finite game, by enumeration.

    A profile is a pure NE iff every player's payoff equals the maximum over its own
    deviations (Nash 1951). The best-response gain of player ``i`` at a profile is
    ``max_{k'} T[..., k', ..., i] - T[..., k, ..., i]``.

    Args:
        payoffs: ``(K_1, ..., K_n, n)`` payoff tensor (e.g. from :func:`payoff_tensor`).
        atol: gains at most ``atol`` count as zero.

    Returns:
        A :class:`FiniteGameAnalysis`.

    Raises:
        ValueError: the last axis does not match the number of players.
    """
    t = np.asarray(payoffs, np.float64)
    n = t.ndim - 1
    if n < 1 or t.shape[-1] != n:
        raise ValueError(f"payoffs must have shape (K_1, ..., K_n, n); got {t.shape}")
    gains = np.zeros(t.shape[:-1])
    for i in range(n):
        best = t[..., i].max(axis=i, keepdims=True)
        gains = np.maximum(gains, best - t[..., i])
    eq = np.argwhere(gains <= atol)
    return FiniteGameAnalysis(eq, gains, float(gains.min()))


def hardmax_deviation_gains(
    game: ExposureGame, profile, candidates, *, tie_tol: float = 1e-9
) -> np.ndarray:
    """Each producer's best gain from switching to a candidate direction, others fixed,
    in the hardmax game (an epsilon lower bound for ``tau = 0``).

    Args:
        game: the exposure game (hardmax is used whatever its ``tau``).
        profile: ``(n, d)`` strategies.
        candidates: ``(K, d)`` deviation directions.
        tie_tol: score difference treated as a tie.

    Returns:
        ``(n,)`` non-negative gains.
    """
    s = np.asarray(check_profile(profile, game.n_producers, game.dim), np.float64)
    c = _check_matrix(candidates, "candidates").astype(np.float64)
    _check_nonzero_rows(c, "candidates")
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    users = np.asarray(game.users, np.float64)
    w = np.asarray(game.weights, np.float64)
    base = w @ exposure_numpy(users, s, 0.0, tie_tol)
    gains = np.zeros(s.shape[0])
    for i in range(s.shape[0]):
        sc = np.broadcast_to(users @ s.T, (c.shape[0],) + (users.shape[0], s.shape[0])).copy()
        sc[:, :, i] = (users @ c.T).T
        u = np.einsum("m,kmn->kn", w, _hardmax_exposure_np(sc, tie_tol))[:, i]
        gains[i] = max(0.0, u.max() - base[i])
    return gains
