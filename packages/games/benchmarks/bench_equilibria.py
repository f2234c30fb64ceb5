"""Benchmark: equilibrium search, JAX (vmapped restarts, jit) vs a NumPy loop.

Problem (paper size): 100 producers, d = 50, 13,700 users (LastFM-360K size after
filtering), 10 restarts. Both implementations run the same algorithm from the same
starting profiles: Adam on normalised parameters with step size lr / sqrt(1 + t / 100),
stopped when tau * max_i ||grad_R u_i|| <= tol or after --max-steps. The NumPy version is
the straightforward one: a Python loop over restarts, float32 arrays, one step at a time,
every sum over users a BLAS matrix product (NumPy's default BLAS threads).

Both wall time and process CPU time (all threads) are printed: on a shared machine the
wall time of a multi-threaded BLAS call also counts waiting for its threads to be
scheduled, while the CPU time measures the work done.

Usage:
    uv run python packages/games/benchmarks/bench_equilibria.py [--user-batch 1024]
        [--max-steps 300] [--jax-only]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from widelab_games import find_equilibria, make_game, random_profiles


def numpy_ascent(users, weights, theta0, tau, lr, tol, max_steps, decay=100.0):
    """Straightforward NumPy simultaneous gradient ascent, one restart at a time."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    out, steps = [], []
    for theta in theta0:
        theta = theta.copy()
        m = np.zeros_like(theta)
        v = np.zeros_like(theta)
        t = 0

        def crit_grad(theta):
            s = theta / np.linalg.norm(theta, axis=1, keepdims=True)
            z = users @ s.T / tau
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            g = (weights[:, None] * p * (1 - p)).T @ users / tau
            rg = g - np.sum(g * s, axis=1, keepdims=True) * s
            return tau * np.linalg.norm(rg, axis=1).max(), rg, s

        crit, rg, s = crit_grad(theta)
        while t < max_steps and crit > tol:
            grad = -rg / np.linalg.norm(theta, axis=1, keepdims=True)
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad**2
            mh = m / (1 - b1 ** (t + 1))
            vh = v / (1 - b2 ** (t + 1))
            step = lr / np.sqrt(1 + t / decay)
            theta = theta - step * mh / (np.sqrt(vh) + eps)
            t += 1
            crit, rg, s = crit_grad(theta)
        out.append(s)
        steps.append(t)
    return np.stack(out), np.array(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=13_700)
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--user-batch", type=int, default=None, help="JAX: users per block")
    ap.add_argument("--jax-only", action="store_true", help="skip the NumPy peer")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    users = (rng.normal(size=(args.users, args.dim)) / np.sqrt(args.dim)).astype(np.float32)
    users[:, 0] += 0.5  # a shared taste direction, as in fitted embeddings
    game = make_game(users, args.n, args.tau)
    theta0 = random_profiles(rng, args.restarts, args.n, args.dim).astype(np.float32)
    w = np.full(args.users, 1.0 / args.users, np.float32)
    print(
        f"users={args.users} d={args.dim} n={args.n} restarts={args.restarts} "
        f"tau={args.tau} tol={args.tol} max_steps={args.max_steps}; "
        f"jax {jax.__version__} on {jax.devices()[0].platform}"
    )

    kw = dict(init=theta0, tol=args.tol, max_steps=args.max_steps, user_batch=args.user_batch)
    (res, t_first, c_first) = timed(find_equilibria, game, **kw)
    (res, t_jax, c_jax) = timed(find_equilibria, game, **kw)
    print(
        f"JAX (user_batch={args.user_batch}): {t_jax:8.2f} s wall, {c_jax:.2f} s CPU "
        f"(first call incl. compile {t_first:.2f} s wall, {c_first:.2f} s CPU); steps "
        f"{res.steps.tolist()}, converged {int(res.converged.sum())}/{args.restarts}"
    )

    if args.jax_only:
        return
    (prof_np, steps_np), t_np, c_np = timed(
        numpy_ascent,
        users,
        w,
        theta0,
        np.float32(args.tau),
        np.float32(0.05),
        args.tol,
        args.max_steps,
    )
    print(f"NumPy : {t_np:8.2f} s wall, {c_np:.2f} s CPU; steps {steps_np.tolist()}")
    agree = float(np.abs(np.sum(prof_np * res.profiles, axis=-1) - 1).max())
    same = "the same" if steps_np.tolist() == res.steps.tolist() else "DIFFERENT"
    print(f"{same} step counts; max |cos(jax, numpy) - 1| over producers: {agree:.2e}")
    print(
        f"speed-up (NumPy / JAX, compiled): {t_np / t_jax:.1f}x wall, {c_np / c_jax:.1f}x CPU; "
        f"incl. compile {t_np / t_first:.1f}x wall, {c_np / c_first:.1f}x CPU"
    )


def timed(fn, *args, **kwargs):
    """``(result, wall seconds, process CPU seconds)`` of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


if __name__ == "__main__":
    main()
