"""Likelihoods of a Bayesian network's outputs ``f`` of shape ``(N, k)``.

* :class:`Gaussian`: ``y_ij ~ N(f_ij, sigma^2)`` independently for every point and
  output; with one-hot targets this is the "regression on one-hot labels" of the NNGP
  literature (Lee et al. 2018; Matthews et al. 2018). It is the only likelihood under
  which the readout's conditional posterior is Gaussian, so the repriorisation of
  Hron et al. 2022 (and the collapsed sampler built on it) needs it.
* :class:`Categorical`: ``y_i ~ Categorical(softmax(f_i))`` for class labels, for the
  samplers that move every parameter (plain GHMC, NUTS).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """``y_ij ~ N(f_ij, noise_std^2)`` for every point ``i`` and output ``j``.

    Args:
        noise_std: observation noise ``sigma > 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> lik = Gaussian(1.0)
        >>> round(float(lik.log_likelihood(jnp.zeros((1, 1)), jnp.zeros((1, 1)))), 4)
        -0.9189
    """

    noise_std: float

    def __post_init__(self):
        s = self.noise_std
        if isinstance(s, bool) or not isinstance(s, (int, float, np.floating, np.integer)):
            raise ValueError(f"noise_std must be a positive finite number, got {s!r}")
        if not (math.isfinite(float(s)) and float(s) > 0):
            raise ValueError(f"noise_std must be positive and finite, got {s!r}")
        object.__setattr__(self, "noise_std", float(s))

    def targets(self, y, out_dim: int) -> jax.Array:
        """Targets as given (``(N,)`` is read as one output column)."""
        y = jnp.asarray(y)
        return y[:, None] if y.ndim == 1 else y

    def log_likelihood(self, y: jax.Array, f: jax.Array) -> jax.Array:
        """``sum_ij log N(y_ij; f_ij, sigma^2)``."""
        s2 = self.noise_std**2
        r = y - f
        return -0.5 * jnp.sum(r * r) / s2 - 0.5 * r.size * math.log(2 * math.pi * s2)


@dataclasses.dataclass(frozen=True)
class Categorical:
    """``y_i ~ Categorical(softmax(f_i))`` over ``k`` classes (the readout's ``out_dim``).

    Targets are integer labels ``(N,)`` in ``[0, k)`` or one-hot rows ``(N, k)``; they
    are stored one-hot.

    Example:
        >>> import jax.numpy as jnp
        >>> lik = Categorical()
        >>> y = lik.targets(jnp.array([0, 1]), 2)
        >>> round(float(lik.log_likelihood(y, jnp.zeros((2, 2)))), 4)  # 2 log(1/2)
        -1.3863
    """

    def targets(self, y, out_dim: int) -> jax.Array:
        """One-hot ``(N, k)`` targets from labels or one-hot rows.

        Raises:
            ValueError: labels that are not integers in ``[0, k)``, or rows that are not
                one-hot.
        """
        a = np.asarray(y)
        if a.ndim == 1:
            if a.size and not np.all(np.isfinite(a.astype(np.float64))):
                raise ValueError("y: class labels must be finite integers")
            if a.size and (
                not np.all(np.equal(np.mod(a, 1), 0)) or a.min() < 0 or a.max() >= out_dim
            ):
                bad = a[(np.mod(a, 1) != 0) | (a < 0) | (a >= out_dim)][0]
                raise ValueError(
                    f"y: class labels must be integers in [0, {out_dim}) (the readout's "
                    f"out_dim), got {bad!r}"
                )
            return jax.nn.one_hot(jnp.asarray(a.astype(np.int64)), out_dim)
        if a.ndim == 2 and not (np.all((a == 0) | (a == 1)) and np.all(a.sum(1) == 1)):
            raise ValueError("y: a 2-D target for the categorical likelihood must be one-hot rows")
        return jnp.asarray(a)

    def log_likelihood(self, y: jax.Array, f: jax.Array) -> jax.Array:
        """``sum_i log softmax(f_i)[y_i]`` with one-hot ``y``."""
        return jnp.sum(y * jax.nn.log_softmax(f, axis=-1))


Likelihood = Gaussian | Categorical
