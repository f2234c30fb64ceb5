"""Bayesian linear regression of rewards with rank-one (Sherman-Morrison) updates
(Janz et al. 2019, eq. 3-4).
"""

from __future__ import annotations

import numpy as np


class BayesLinReg:
    """Gaussian posterior of ``w`` in ``r = phi^T w + N(0, noise_var)``, ``w ~ N(0, prior_var I)``.

    Janz et al. (2019), eq. 3-4; each observation updates the covariance by
    Sherman-Morrison, ``S <- S - S phi phi^T S / (noise_var + phi^T S phi)``, and
    ``b <- b + phi r / noise_var``; the mean is ``S b``.

    Args:
        dim: feature dimension.
        prior_var: ``theta > 0``.
        noise_var: ``beta > 0``.

    Raises:
        ValueError: non-positive variances or dimension.
    """

    def __init__(self, dim: int, prior_var: float = 1.0, noise_var: float = 0.01):
        if dim < 1 or prior_var <= 0 or noise_var <= 0:
            raise ValueError(
                f"need dim >= 1 and positive variances, got {dim}, {prior_var}, {noise_var}"
            )
        self.noise_var = float(noise_var)
        self.cov = np.eye(dim) * prior_var
        self.b = np.zeros(dim)

    @property
    def mean(self) -> np.ndarray:
        """Posterior mean ``S b``."""
        return self.cov @ self.b

    def update(self, phi: np.ndarray, r: float) -> None:
        """Add one observation ``(phi, r)`` (rank-one update)."""
        sp = self.cov @ phi
        self.cov -= np.outer(sp, sp) / (self.noise_var + phi @ sp)
        self.b += phi * (r / self.noise_var)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One posterior draw of ``w``."""
        chol = np.linalg.cholesky(self.cov + 1e-10 * np.eye(len(self.b)))
        return self.mean + chol @ rng.standard_normal(len(self.b))
