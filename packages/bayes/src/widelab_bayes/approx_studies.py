"""Studies of the approximate-inference section shared by its report and its command."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=16)
def _sw_batch(n_projections: int, directions: str):
    """SW_2^2 estimates for a batch of direction keys, compiled once per projection count
    and direction kind (the samples are arguments, so XLA does not constant-fold them)."""
    import jax

    from .sliced_wasserstein import sliced_wasserstein

    def one(k, a, b):
        return sliced_wasserstein(
            a, b, key=k, n_projections=n_projections, directions=directions, root=False
        )

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def sw_variance_study(dim: int, n_projections_list, *, n_samples: int, n_keys: int, seed: int):
    """Std of the SW_2^2 estimator over direction draws, i.i.d. vs orthogonal.

    Rowland et al. (2019), Section 3: both estimators are unbiased; orthogonal blocks
    reduce the variance. ``x`` is standard normal and ``y`` a skewed cloud.

    Args:
        dim: dimension.
        n_projections_list: projection counts ``L`` to compare.
        n_samples: points per measure.
        n_keys: independent direction draws per estimator.
        seed: seed of data and directions.

    Returns:
        A list of ``(L, std_iid, std_orth, mean_iid, mean_orth)``.
    """
    import jax

    kx, ky, kd = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (n_samples, dim))
    y = 0.5 * jax.random.normal(ky, (n_samples, dim)) ** 2  # a skewed, anisotropic cloud
    keys = jax.random.split(kd, n_keys)
    rows = []
    for L in n_projections_list:
        res = {}
        for kind in ("iid", "orthogonal"):
            v = np.asarray(_sw_batch(int(L), kind)(keys, x, y), np.float64)
            res[kind] = (v.std(ddof=1), v.mean())
        rows.append((L, res["iid"][0], res["orthogonal"][0], res["iid"][1], res["orthogonal"][1]))
    return rows


def _episodes_cell(v):
    """A median-episodes cell: the number, 'not run' (nan) or 'over cap' (inf)."""
    v = float(v)
    if np.isnan(v):
        return "not run"
    return "over cap" if np.isinf(v) else v
