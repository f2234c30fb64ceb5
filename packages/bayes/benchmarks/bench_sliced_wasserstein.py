"""Sliced Wasserstein: widelab_bayes (i.i.d. and orthogonal directions) vs POT.

Run (POT stays out of the package's dependencies):

    uv run --with pot python packages/bayes/benchmarks/bench_sliced_wasserstein.py

Prints, at equal projection counts, the time per call (after compilation for JAX) and
the standard deviation of the SW_2 estimate over independent direction draws, for
POT's ``ot.sliced_wasserstein_distance`` and for ours, in one run on the same data.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from widelab_bayes.sliced_wasserstein import sliced_wasserstein


def _timeit(fn, reps):
    fn(0)
    t = time.perf_counter()
    for r in range(reps):
        fn(r)
    return (time.perf_counter() - t) / reps


def main(n=1000, dim=20, projections=(10, 50, 200), n_seeds=50, reps=20):
    import ot

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    y = (0.5 * rng.standard_normal((n, dim)) ** 2).astype(np.float32)
    xj, yj = jax.numpy.asarray(x), jax.numpy.asarray(y)
    print(f"n = {n} points per measure, d = {dim}, p = 2, {n_seeds} seeds for the std")
    print(f"{'L':>5} {'method':<22} {'ms / call':>10} {'std of SW_2':>12} {'mean SW_2':>10}")
    for L in projections:
        pot = lambda s, L=L: float(
            ot.sliced_wasserstein_distance(x, y, n_projections=L, p=2, seed=s)
        )
        t_pot = _timeit(pot, reps)
        v_pot = np.array([pot(s) for s in range(n_seeds)])
        print(
            f"{L:>5} {'POT':<22} {1e3 * t_pot:>10.3f} {v_pot.std(ddof=1):>12.3e} {v_pot.mean():>10.5f}"
        )
        for kind in ("iid", "orthogonal"):
            f = jax.jit(
                lambda k, L=L, kind=kind: sliced_wasserstein(
                    xj, yj, key=k, n_projections=L, directions=kind
                )
            )
            ours = lambda s, f=f: float(f(jax.random.key(s)))
            t_ours = _timeit(ours, reps)
            v = np.array([ours(s) for s in range(n_seeds)])
            name = f"widelab {kind}"
            print(
                f"{L:>5} {name:<22} {1e3 * t_ours:>10.3f} {v.std(ddof=1):>12.3e} {v.mean():>10.5f}"
            )


if __name__ == "__main__":
    main()
