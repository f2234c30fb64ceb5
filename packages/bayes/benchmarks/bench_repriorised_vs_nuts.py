"""Repriorised generalised HMC vs blackjax NUTS on the plain parameterization.

Same posterior for every method: a one-hidden-layer ReLU network (NTK parameterization,
raw parameters ~ N(0, 1), W_std=1.5, b_std=0.1 by default) on toy 1-D regression data, Gaussian
likelihood. Function-space ESS (smallest rank-normalised bulk ESS over 8 fixed random
projections of 25 test predictions, Hron et al. 2022) per post-warm-up gradient and per
second of the compiled run (warm-up included, compilation excluded). GHMC (repriorised
and plain) uses one leapfrog step per transition, persistence 0.95 and Neal's (2020)
non-reversible uniform; NUTS uses blackjax's window adaptation on every chain.

Collapsed GHMC runs the same sampler on the hidden weights alone, with the readout
integrated out, and draws the repriorised readout ``phi ~ N(0, I)`` (its exact
posterior) for every stored draw; collapsed NUTS does the same with blackjax NUTS, as
a baseline that isolates what the collapse alone buys.

Also prints the cost of one gradient of each density (all chains vmapped, inside a
compiled loop, so without dispatch overhead), and the ratio repriorised / plain.

Run (once; the machine is shared, so pin it to one core):
    taskset -c 1 uv run python packages/bayes/benchmarks/bench_repriorised_vs_nuts.py
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
from widelab_bayes.model import BNN
from widelab_bayes.samplers import flat_logdensity
from widelab_bayes.studies import (
    HEADER,
    METHODS,
    mlp,
    sample_bnn,
    sampling_coordinates,
    toy_regression,
)


def gradient_ms(width: int, n_data: int, noise: float, chains: int, b_std: float, steps=200):
    """Milliseconds per vmapped value-and-gradient of the plain, repriorised and collapsed
    densities."""
    x, y, _ = toy_regression(n_data, 0, noise)
    model = BNN(mlp(width, b_std=b_std), x, y, noise_std=noise)
    out = {}
    for name in ("plain", "repriorised", "collapsed"):
        density, init_fn, _ = sampling_coordinates(f"{name}-ghmc", model)
        keys = jax.random.split(jax.random.key(0), chains)
        ld, ravel, _ = flat_logdensity(density, init_fn(keys[0]))
        init = jnp.stack([ravel(init_fn(k)) for k in keys])
        vg = jax.vmap(jax.value_and_grad(ld))

        @jax.jit
        def loop(v, vg=vg):
            def body(v, _):
                _, g = vg(v)
                return v + 1e-6 * g, None

            return jax.lax.scan(body, v, None, length=steps)[0]

        jax.block_until_ready(loop(init))
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            jax.block_until_ready(loop(init))
            best = min(best, time.perf_counter() - t0)
        out[name] = 1e3 * best / steps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,256,1024")
    ap.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated subset (the gain tables need all of them)",
    )
    ap.add_argument("--n-data", type=int, default=100)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--b-std", type=float, default=0.1, help="bias scale of every layer")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--ghmc-warmup", type=int, default=500)
    ap.add_argument("--ghmc-samples", type=int, default=2000)
    ap.add_argument("--thin", type=int, default=10, help="GHMC transitions per stored draw")
    ap.add_argument("--collapsed-thin", type=int, default=2, help="the same, collapsed GHMC")
    ap.add_argument("--persistence", type=float, default=0.95)
    ap.add_argument("--u-drift", type=float, default=0.02, help="0: standard accept/reject")
    ap.add_argument("--nuts-warmup", type=int, default=200)
    ap.add_argument("--nuts-samples", type=int, default=200)
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    methods = args.methods.split(",")
    if unknown := set(methods) - set(METHODS):
        ap.error(f"unknown methods {sorted(unknown)}; expected some of {METHODS}")
    print(
        f"jax {jax.__version__}, {jax.default_backend()}, {len(os.sched_getaffinity(0))} of "
        f"{os.cpu_count()} CPUs usable, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"N={args.n_data}, noise={args.noise}, b_std={args.b_std}, chains={args.chains}")
    print("\ngradient cost (ms per vmapped value_and_grad over all chains):")
    cost = {}
    for w in widths:
        cost[w] = gradient_ms(w, args.n_data, args.noise, args.chains, args.b_std)
        c = cost[w]
        print(
            f"  width {w}: plain {c['plain']:.3f}, repriorised {c['repriorised']:.3f}, "
            f"collapsed {c['collapsed']:.3f}, ratio {c['repriorised'] / c['plain']:.2f}",
            flush=True,
        )
    rows, by = [], {}
    key = jax.random.key(0)
    for w in widths:
        for method in methods:
            key, sub = jax.random.split(key)
            nuts = method.endswith("nuts")
            thin = 1 if nuts else args.collapsed_thin if method == "collapsed-ghmc" else args.thin
            t0 = time.perf_counter()
            run = sample_bnn(
                sub,
                w,
                method,
                n_data=args.n_data,
                noise_std=args.noise,
                chains=args.chains,
                num_warmup=args.nuts_warmup if nuts else args.ghmc_warmup,
                num_samples=args.nuts_samples if nuts else args.ghmc_samples * args.thin // thin,
                thin=thin,
                persistence=args.persistence,
                u_drift=args.u_drift or None,
                b_std=args.b_std,
            )
            by[(method, w)] = run
            rows.append(run.row())
            r = run.result
            total_grads = r.gradients_per_chain + r.warmup_gradients_per_chain
            print(
                f"  {method:17s} width {w:5d}: ESS/grad {run.ess_per_gradient:.3g}, "
                f"ESS/s {run.ess_per_second:.3g}, step {r.step_size:.3g}, "
                f"grads/chain {r.gradients_per_chain:.0f} (+{r.warmup_gradients_per_chain:.0f} "
                f"warm-up), ms per all-chain gradient {1e3 * r.seconds / total_grads:.3f}, "
                f"total {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    print("\n" + " | ".join(HEADER))
    for r in rows:
        print(" | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    if set(methods) != set(METHODS):
        return
    print(
        "\nagainst plain NUTS: method | width | ESS/grad gain | ESS/s gain | ESS/s gain, "
        "post-warm-up (est.) | gradient cost / plain"
    )
    for method, density in (("repriorised-ghmc", "repriorised"), ("collapsed-ghmc", "collapsed")):
        for w in widths:
            run, nuts = by[(method, w)], by[("plain-nuts", w)]
            print(
                f"{method} | {w} | {run.ess_per_gradient / nuts.ess_per_gradient:.3g} | "
                f"{run.ess_per_second / nuts.ess_per_second:.3g} | "
                f"{_post_warmup_ess_per_second(run) / _post_warmup_ess_per_second(nuts):.3g} | "
                f"{cost[w][density] / cost[w]['plain']:.2f}"
            )
    print("\nother ratios: width | repriorised / plain GHMC | collapsed GHMC / collapsed NUTS")
    for w in widths:
        rg, pg = by[("repriorised-ghmc", w)], by[("plain-ghmc", w)]
        cg, cn = by[("collapsed-ghmc", w)], by[("collapsed-nuts", w)]
        print(
            f"{w} | ESS/grad {rg.ess_per_gradient / pg.ess_per_gradient:.3g} | "
            f"ESS/grad {cg.ess_per_gradient / cn.ess_per_gradient:.3g}, "
            f"ESS/s {cg.ess_per_second / cn.ess_per_second:.3g}"
        )


def _post_warmup_ess_per_second(run) -> float:
    """ESS per second of the post-warm-up phase alone, estimated by splitting the run's
    wall time in proportion to gradient evaluations (warm-up vs sampling)."""
    r = run.result
    frac = r.gradients_per_chain / (r.gradients_per_chain + r.warmup_gradients_per_chain)
    return run.ess / (r.seconds * frac)


if __name__ == "__main__":
    main()
