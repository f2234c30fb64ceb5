"""Collapsed repriorised sampling vs plain NUTS on digits with 10 outputs.

The same posterior for both: a one-hidden-layer ReLU network (NTK parameterization,
W_std=1.5, b_std=0.1) on a subset of scikit-learn's bundled digits (inputs scaled to
unit mean square), Gaussian likelihood (noise std 0.3) on centred one-hot targets, one
output per class. Function-space ESS: the smallest bulk ESS over 8 fixed random
projections of the test outputs (16 test digits x 10 outputs), per post-warm-up
gradient and per second of the compiled run (warm-up included, compilation excluded).

"collapsed-ghmc" runs generalised HMC (one leapfrog step, persistence 0.95, Neal's
non-reversible uniform) on the hidden weights with the readout integrated out and draws
the repriorised readout exactly for every stored draw (Hron et al. 2022); "plain-nuts"
is blackjax NUTS on all raw parameters with per-chain window adaptation.

Full size (on a quiet machine):
    uv run python packages/bayes/benchmarks/bench_digits_collapsed_vs_nuts.py \\
        --n-data 256 --widths 64,256,512,1024 --chains 4 --warmup 300 --samples 500
"""

from __future__ import annotations

import argparse

import jax
from widelab_bayes.scale_studies import image_ess_vs_width
from widelab_bayes.studies import HEADER


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-data", type=int, default=256)
    ap.add_argument("--widths", default="64,256,512,1024")
    ap.add_argument("--methods", default="collapsed-ghmc,plain-nuts")
    ap.add_argument("--network", default="fcn", choices=["fcn", "resnet"])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    methods = args.methods.split(",")
    runs = image_ess_vs_width(
        jax.random.key(args.seed),
        widths,
        methods,
        (args.network,),
        n_data=args.n_data,
        n_test=16,
        chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
    )
    rows = [[_fmt(v) for v in r.row()] for _, r in runs]
    cols = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    print("  ".join(h.rjust(c) for h, c in zip(HEADER, cols)))
    for r in rows:
        print("  ".join(v.rjust(c) for v, c in zip(r, cols)))
    by = {(r.method, r.width): r for _, r in runs}
    if len(methods) == 2:
        ours, peer = methods
        for w in widths:
            a, b = by[(ours, w)], by[(peer, w)]
            print(
                f"width {w}: {ours} / {peer}: ESS/grad x{a.ess_per_gradient / b.ess_per_gradient:.1f}, "
                f"ESS/s x{a.ess_per_second / b.ess_per_second:.1f}"
            )


if __name__ == "__main__":
    main()
