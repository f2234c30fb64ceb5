"""The second-order test for local Nash equilibria on the sphere.

A profile ``s`` is a (strict) local Nash equilibrium of an exposure game when, for every
producer ``i``, ``s_i`` is a strict local maximum of ``u_i(., s_{-i})`` on ``S^{d-1}``.
Sufficient conditions (Hron et al. 2023, Section 2 and Appendix; Absil, Mahony &
Sepulchre 2008, Prop. 6.3.x): the Riemannian gradient vanishes and the Riemannian Hessian

    Hess u_i(s_i) = P_i (grad^2 u_i) P_i - <s_i, grad u_i> P_i,   P_i = I - s_i s_i^T

is negative definite on the tangent space at ``s_i``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .game import ExposureGame, _require_softmax, check_profile

EQUILIBRIUM = "local_nash"
SADDLE = "not_nash"
DEGENERATE = "degenerate"
NOT_CRITICAL = "not_critical"


class SecondOrderResult(NamedTuple):
    """What :func:`second_order_test` finds for one profile.

    Attributes:
        grad_norm: ``(n,)`` Riemannian gradient norms, times ``tau`` (dimensionless).
        max_eig: ``(n,)`` largest eigenvalue of each Riemannian Hessian on the tangent
            space, times ``tau**2`` (dimensionless).
        status: one of ``"local_nash"`` (all gradients ~0, all Hessians negative definite),
            ``"not_nash"`` (critical, but some Hessian has a positive eigenvalue),
            ``"degenerate"`` (critical, largest eigenvalue within tolerance of 0) or
            ``"not_critical"``.
    """

    grad_norm: np.ndarray
    max_eig: np.ndarray
    status: str


def riemannian_hessian_max_eigs(users, weights, s, tau) -> tuple[np.ndarray, np.ndarray]:
    """Scaled gradient norms ``tau * ||grad_R u_i||`` and largest tangent-space eigenvalues
    ``tau**2 * lambda_max(Hess_R u_i)`` for every producer (NumPy, float64).

    Computed in float64 NumPy: eigenvalues near zero decide the classification, and a
    NumPy evaluation avoids a compilation per problem shape.
    """
    u = np.asarray(users, np.float64)
    w = np.asarray(weights, np.float64)
    s = np.asarray(s, np.float64)
    tau = float(tau)
    z = (u @ s.T) / tau
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    a = w[:, None] * p * (1.0 - p)  # (m, n)
    # scaled by tau and tau**2: g~ = tau * grad, h~ = tau**2 * hess
    g = a.T @ u  # (n, d)
    n, d = s.shape
    lam = np.empty(n)
    eye = np.eye(d)
    for i in range(n):
        h = (u * (a[:, i] * (1.0 - 2.0 * p[:, i]))[:, None]).T @ u
        proj = eye - np.outer(s[i], s[i])
        rh = proj @ h @ proj - tau * (s[i] @ g[i]) * proj
        # the normal direction s_i is an eigenvector with eigenvalue 0: push it below
        big = np.abs(rh).sum() + 1.0
        lam[i] = np.linalg.eigvalsh(rh - big * np.outer(s[i], s[i]))[-1]
    rg = g - np.sum(g * s, axis=1, keepdims=True) * s
    return np.linalg.norm(rg, axis=1), lam


def second_order_test(
    game: ExposureGame,
    profile,
    *,
    grad_tol: float = 1e-4,
    eig_tol: float = 1e-6,
) -> SecondOrderResult:
    """Classify a profile with the second-order test on the sphere.

    Hron et al. (2023), Section 2/Appendix (local NE via first- and second-order
    conditions); Riemannian Hessian of Absil et al. (2008), Eq. 5.15 specialised to the
    sphere. Gradients and eigenvalues are scaled by ``tau`` and ``tau**2`` so the
    tolerances do not depend on the temperature.

    Args:
        game: a softmax exposure game (``tau > 0``).
        profile: ``(n, d)`` strategies.
        grad_tol: a producer is critical when ``tau * ||grad_R u_i|| <= grad_tol``.
        eig_tol: Hessians count as negative definite when every scaled tangent eigenvalue
            is below ``-eig_tol``; as indefinite when one is above ``+eig_tol``.

    Returns:
        A :class:`SecondOrderResult`.

    Raises:
        ValueError: ``tau == 0`` or a bad profile.
    """
    _require_softmax(game)
    s = check_profile(profile, game.n_producers, game.dim).astype(game.users.dtype)
    gn, lam = riemannian_hessian_max_eigs(game.users, game.weights, s, game.tau)
    return SecondOrderResult(gn, lam, _classify(gn, lam, grad_tol, eig_tol))


def _classify(gn, lam, grad_tol, eig_tol) -> str:
    if (gn > grad_tol).any():
        return NOT_CRITICAL
    if (lam < -eig_tol).all():
        return EQUILIBRIUM
    if (lam > eig_tol).any():
        return SADDLE
    return DEGENERATE


def mean_direction(game: ExposureGame) -> np.ndarray:
    """The demand's mean direction ``E[c] / ||E[c]||``.

    At the profile where every producer plays it, all exposures are ``1/n`` and each
    Euclidean gradient is parallel to ``E[c]``, so it is always a critical point.

    Raises:
        ValueError: the demand's mean is (numerically) zero.
    """
    mu = np.asarray(game.weights, np.float64) @ np.asarray(game.users, np.float64)
    norm = float(np.linalg.norm(mu))
    if norm <= 1e-12 * float(np.abs(np.asarray(game.users)).max()):
        raise ValueError("the demand has zero mean: the mean direction is undefined")
    return mu / norm


def collapse_threshold(game: ExposureGame) -> float:
    """Temperature above which the all-at-the-mean profile is a strict local NE.

    At ``s_i = mu/||mu||`` for all ``i`` every ``p_i = 1/n``, so (with ``a = (1-1/n)/n``)
    the Riemannian Hessian on the tangent space is
    ``(a/tau) [ (1 - 2/n)/tau * P Cov(c) P - ||mu|| P ]``. It is negative definite iff

        tau > tau* = (1 - 2/n) * lambda_max(P Cov(c) P) / ||mu||,

    consistent with the paper's result that large exploration collapses all producers
    onto the mean user direction under non-negative embeddings (Hron et al. 2023,
    Section 2); the threshold itself is derived here from the Hessian above.

    Args:
        game: the exposure game (its ``tau`` is ignored).

    Returns:
        ``tau*`` (0 when ``n <= 2`` or the demand has no spread off the mean direction).
    """
    u = np.asarray(game.users, np.float64)
    w = np.asarray(game.weights, np.float64)
    mu = w @ u
    norm = np.linalg.norm(mu)
    if norm <= 0:
        raise ValueError("the demand has zero mean: the mean direction is undefined")
    e = mu / norm
    cov = (u * w[:, None]).T @ u - np.outer(mu, mu)
    p = np.eye(len(e)) - np.outer(e, e)
    lam = np.linalg.eigvalsh(p @ cov @ p)[-1]
    return max(0.0, (1.0 - 2.0 / game.n_producers) * lam / norm)
