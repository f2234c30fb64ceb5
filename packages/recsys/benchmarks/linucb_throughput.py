"""LinUCB rounds per second, 100 arms, d = 20: JAX (lax.scan, vmapped over seeds) vs NumPy.

    cd /work/main && uv run python packages/recsys/benchmarks/linucb_throughput.py

The JAX figure counts rounds summed over the vmapped seeds; the single-sequence figure is
one seed. The NumPy peers are a Sherman-Morrison loop and the direct-solve reference.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    from widelab_recsys import linucb_numpy_incremental, linucb_reference, run_linucb

    n_arms, dim = 100, 20
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_arms, dim)) / np.sqrt(dim)
    theta = rng.normal(size=dim)

    def timed(fn, *a):
        out = fn(*a)
        jax.block_until_ready(out)
        t = time.perf_counter()
        out = fn(*a)
        jax.block_until_ready(out)
        return time.perf_counter() - t

    xs, th = jnp.asarray(x, jnp.float32), jnp.asarray(theta, jnp.float32)
    single = jax.jit(lambda noise: run_linucb(xs, th, noise))
    rounds = 20_000
    noise = 0.1 * jax.random.normal(jax.random.key(0), (rounds,))
    t1 = timed(single, noise)
    print(f"JAX LinUCB, 1 sequence            {rounds / t1:10.0f} rounds/s")
    for seeds in (16, 64):
        batched = jax.jit(jax.vmap(lambda n: run_linucb(xs, th, n)))
        nb = 0.1 * jax.random.normal(jax.random.key(1), (seeds, rounds))
        tb = timed(batched, nb)
        print(f"JAX LinUCB, vmap over {seeds:3d} seeds   {seeds * rounds / tb:10.0f} rounds/s")
    n_np = 5_000
    e = 0.1 * rng.normal(size=n_np)
    t = time.perf_counter()
    linucb_numpy_incremental(x, theta, e)
    print(f"NumPy loop (Sherman-Morrison)      {n_np / (time.perf_counter() - t):10.0f} rounds/s")
    t = time.perf_counter()
    linucb_reference(x, theta, e[:1000])
    print(f"NumPy reference (direct solves)    {1000 / (time.perf_counter() - t):10.0f} rounds/s")


if __name__ == "__main__":
    main()
