"""Myrtle-5 NNGP + NTK: widelab against Neural Tangents 0.6.5, both in one run.

widelab runs in this interpreter's environment, Neural Tangents in its own venv (it
needs jax 0.4.30; see ``bench_vs_nt.py`` for the set-up)::

    uv run python packages/kernels/benchmarks/bench_myrtle_vs_nt.py \
        --nt-python /tmp/nt-venv/bin/python --n 64 --side 16

Every measurement runs in a fresh subprocess. Rows:

* ``nt`` / ``widelab``: the whole ``n x n`` kernel in one jitted call (best of
  ``--repeats`` calls after a warm-up call, which is reported as "first").
* ``widelab compute``: the out-of-core path (``compute_kernels`` into a fresh folder:
  blocks written to the ``.npy`` files and fsynced; "first" includes compilation) at
  ``n`` and ``2 n`` with the same tile; its peak memory is bounded by the tile and the
  inputs, not by ``n^2``.

Time per kernel entry divides by the ``n^2`` entries delivered. The last lines
extrapolate to full CIFAR-10 at 32 x 32 (``50000^2 / 2 + 10000 * 50000`` entries, the
upper triangle of train x train plus test x train), using XLA's own FLOP count of one
32 x 32 entry; the accelerator figure assumes a fraction ``--efficiency`` of a peak
FLOP/s ``--peak-tflops`` (an assumption, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

WORKER = r"""
import json, os, sys, tempfile, time, resource
import numpy as np
import jax, jax.numpy as jnp
lib, mode, n, side, repeats, batch = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
x = np.random.default_rng(0).normal(size=(n, side, side, 3)).astype(np.float32)
S2 = 2.0 ** 0.5
if lib == "nt":
    import warnings; warnings.filterwarnings("ignore")
    from neural_tangents import stax as S
    cr = lambda k: [S.Conv(1, (3, 3), padding="SAME", W_std=S2), S.Relu()] * k
    pool = S.AvgPool((2, 2), strides=(2, 2))
    net = S.serial(*cr(2), pool, *cr(1), pool, *cr(1), S.GlobalAvgPool(), S.Dense(10, W_std=S2))
    f = jax.jit(net[2], static_argnames="get")
    run = lambda: jax.block_until_ready(f(jnp.asarray(x), None, get=("nngp", "ntk")))
elif mode == "whole":
    from widelab_kernels import kernel_fn
    from widelab_kernels.presets import myrtle
    f = kernel_fn(myrtle(5))
    run = lambda: jax.block_until_ready(f(jnp.asarray(x), None, get=("nngp", "ntk")))
elif mode == "flops":
    from widelab_kernels import kernel_fn
    from widelab_kernels.presets import myrtle
    kf = kernel_fn(myrtle(5), jit=False)
    g = jax.jit(lambda a, b: kf(a, b, get=("nngp", "ntk")))
    a = jnp.asarray(x[:batch]); b = jnp.asarray(x[batch:2 * batch])
    cost = g.lower(a, b).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    print(json.dumps({"flops_per_entry": float(cost["flops"]) / batch**2})); sys.exit()
else:
    from widelab_kernels.compute import compute_kernels
    def run():
        with tempfile.TemporaryDirectory() as d:
            compute_kernels("myrtle5", x, x[:0], d, batch_size=batch, tile=4 * batch,
                            progress=False)
t = time.perf_counter(); run(); first = time.perf_counter() - t
best = min((lambda t0: (run(), time.perf_counter() - t0)[1])(time.perf_counter())
           for _ in range(repeats))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first": first, "best": best, "peak_mb": peak}))
"""


def _run(python, lib, mode, n, side, repeats, batch, timeout) -> dict:
    args = [python, "-c", WORKER, lib, mode, str(n), str(side), str(repeats), str(batch)]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nt-python", default="/tmp/nt-venv/bin/python")
    p.add_argument("--n", type=int, default=64, help="images")
    p.add_argument("--side", type=int, default=16, help="image height and width")
    p.add_argument("--batch", type=int, default=8, help="piece edge of the compute rows")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--peak-tflops", type=float, default=67.0, help="accelerator FP32 peak")
    p.add_argument("--efficiency", type=float, default=0.3, help="assumed fraction of peak")
    a = p.parse_args(argv)
    n, side = a.n, a.side
    print(f"Myrtle-5 NNGP+NTK, {side}x{side}x3 images, x2 = None")
    print(f"{'row':18s} {'n':>5s} {'best s':>9s} {'first s':>9s} {'us/entry':>9s} {'peak MB':>8s}")
    rows = [
        ("nt", a.nt_python, "nt", "whole", n),
        ("widelab", sys.executable, "wl", "whole", n),
        ("widelab compute", sys.executable, "wl", "compute", n),
        ("widelab compute", sys.executable, "wl", "compute", 2 * n),
    ]
    res = {}
    for label, py, lib, mode, m in rows:
        t0 = time.time()
        r = _run(py, lib, mode, m, side, a.repeats, a.batch, a.timeout)
        res[(label, m)] = r
        if "error" in r:
            print(f"{label:18s} {m:5d} {r['error']}")
            continue
        us = 1e6 * r["best"] / m**2
        print(
            f"{label:18s} {m:5d} {r['best']:9.3f} {r['first']:9.2f} {us:9.2f} "
            f"{r['peak_mb']:8.0f}   ({time.time() - t0:.0f} s)",
            flush=True,
        )
    nt, wl = res[("nt", n)], res[("widelab", n)]
    if "error" not in nt and "error" not in wl:
        print(f"NT / widelab time per entry (whole kernel, warm): {nt['best'] / wl['best']:.2f}x")
    fl = {s: _run(sys.executable, "wl", "flops", 4, s, 0, 2, a.timeout) for s in (side, 32)}
    if all("error" not in f for f in fl.values()) and "error" not in wl:
        entries = 50000**2 / 2 + 10000 * 50000
        f16, f32 = fl[side]["flops_per_entry"], fl[32]["flops_per_entry"]
        us32 = 1e6 * wl["best"] / n**2 * f32 / f16
        print(f"XLA FLOPs per entry: {f16:.3g} at {side}x{side}, {f32:.3g} at 32x32")
        print(
            f"full CIFAR-10 (32x32, {entries:.3g} entries): {entries * us32 / 3.6e9:.3g} "
            f"hours on this CPU at the measured rate scaled by FLOPs; "
            f"{entries * f32 / (a.peak_tflops * 1e12 * a.efficiency) / 3600:.3g} "
            f"accelerator-hours at {a.efficiency:.0%} of {a.peak_tflops:g} TFLOP/s (assumed)"
        )
    else:
        print(f"FLOP count unavailable: {fl}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
