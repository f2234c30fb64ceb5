"""Overhead of pairwise_tiled against one untiled jit call (CPU; fake devices share cores)."""

import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from widelab_core.devices import pairwise_tiled

n, d = int(sys.argv[1]) if len(sys.argv) > 1 else 4096, 64
x = jax.random.normal(jax.random.key(0), (n, d))


def rbf(a, b):
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return jnp.exp(-sq / d)


f = jax.jit(rbf)
f(x, x).block_until_ready()


def best(call, reps=3):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        call().block_until_ready()
        times.append(time.perf_counter() - t)
    return min(times)


t_full = best(lambda: f(x, x))
print(f"untiled jit, n={n}: {t_full * 1e3:.0f} ms")
for ndev in (1, 8):
    mesh = Mesh(np.asarray(jax.devices()[:ndev]), ("tiles",))
    for b in (512, 1024):
        pairwise_tiled(rbf, x, batch_size=b, mesh=mesh).block_until_ready()
        for x2, label in ((None, "x2=None (triangle)"), (x + 0, "x2 given (full grid)")):
            t = best(
                lambda x2=x2, b=b, mesh=mesh: pairwise_tiled(rbf, x, x2, batch_size=b, mesh=mesh)
            )
            print(f"{ndev} device(s), b={b}, {label}: {t * 1e3:.0f} ms (best of 3)")
