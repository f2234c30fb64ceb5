"""Repriorised generalised HMC vs blackjax NUTS on the plain parameterization.

Same posterior for every method: a one-hidden-layer ReLU network (NTK parameterization,
raw parameters ~ N(0, 1), W_std=1.5, b_std=0.1) on toy 1-D regression data, Gaussian
likelihood. Function-space ESS (smallest rank-normalised bulk ESS over 8 fixed random
projections of 25 test predictions, Hron et al. 2022) per post-warm-up gradient and per
second of the compiled run (warm-up included, compilation excluded).

Run (once; the machine is shared):
    uv run python packages/bayes/benchmarks/bench_repriorised_vs_nuts.py
"""

from __future__ import annotations

import argparse
import os
import time

import jax
from widelab_bayes.studies import HEADER, sample_bnn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,256,1024")
    ap.add_argument("--n-data", type=int, default=100)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--ghmc-warmup", type=int, default=300)
    ap.add_argument("--ghmc-samples", type=int, default=600)
    ap.add_argument("--thin", type=int, default=2)
    ap.add_argument("--nuts-warmup", type=int, default=150)
    ap.add_argument("--nuts-samples", type=int, default=150)
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    print(
        f"jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPUs visible, "
        f"load average {os.getloadavg()[0]:.1f} (shared machine)"
    )
    print(f"N={args.n_data}, noise={args.noise}, chains={args.chains}")
    rows, by = [], {}
    key = jax.random.key(0)
    for w in widths:
        for method in ("repriorised-ghmc", "plain-ghmc", "plain-nuts"):
            key, sub = jax.random.split(key)
            nuts = method == "plain-nuts"
            t0 = time.perf_counter()
            run = sample_bnn(
                sub,
                w,
                method,
                n_data=args.n_data,
                noise_std=args.noise,
                chains=args.chains,
                num_warmup=args.nuts_warmup if nuts else args.ghmc_warmup,
                num_samples=args.nuts_samples if nuts else args.ghmc_samples,
                thin=1 if nuts else args.thin,
            )
            by[(method, w)] = run
            rows.append(run.row())
            print(
                f"  {method:17s} width {w:5d}: ESS/grad {run.ess_per_gradient:.3g}, "
                f"ESS/s {run.ess_per_second:.3g}, step {run.result.step_size:.3g}, "
                f"grads/chain {run.result.gradients_per_chain:.0f}, "
                f"total {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    print("\n" + " | ".join(HEADER))
    for r in rows:
        print(" | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    print("\nwidth | ESS/grad gain vs NUTS | ESS/s gain vs NUTS | ESS/grad gain vs plain GHMC")
    for w in widths:
        rep, nuts, pg = by[("repriorised-ghmc", w)], by[("plain-nuts", w)], by[("plain-ghmc", w)]
        print(
            f"{w} | {rep.ess_per_gradient / nuts.ess_per_gradient:.3g} | "
            f"{rep.ess_per_second / nuts.ess_per_second:.3g} | "
            f"{rep.ess_per_gradient / pg.ess_per_gradient:.3g}"
        )


if __name__ == "__main__":
    main()
