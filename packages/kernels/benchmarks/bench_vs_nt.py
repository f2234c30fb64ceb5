"""Benchmark widelab_kernels against Neural Tangents 0.6.5, both in one run.

widelab runs in this interpreter's environment; Neural Tangents in a separate venv
(it needs jax 0.4.30), e.g.::

    uv venv /tmp/nt-venv -p 3.11
    uv pip install --python /tmp/nt-venv neural-tangents==0.6.5 jax==0.4.30 jaxlib==0.4.30
    uv run python packages/kernels/benchmarks/bench_vs_nt.py --nt-python /tmp/nt-venv/bin/python

Each case runs in a fresh subprocess per library; times are the best of ``--repeats``
calls after a warm-up (compilation) call, which is reported separately as "first"
(the one-shot time from the first call to its result, tracing and compilation
included) with its ratio NT/widelab. ``--scale`` shrinks the batch sizes (the
reference sizes use ``--scale 1``). ``--label`` is printed above the table (e.g. "measured
with other jobs running").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time, resource
import numpy as np
import jax, jax.numpy as jnp
lib, case, n, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if lib == "nt":
    import warnings; warnings.filterwarnings("ignore")
    from neural_tangents import stax as S, predict
else:
    from widelab_core import layers as S
    from widelab_kernels import kernel_fn, gp_inference
rng = np.random.default_rng(0)

def mlp():
    return S.serial(S.Dense(512, W_std=1.5, b_std=0.05), S.Relu(), S.Dense(512, W_std=1.5, b_std=0.05),
                    S.Relu(), S.Dense(1, W_std=1.5, b_std=0.05))

def cnn():
    c = lambda: S.Conv(128, (3, 3), padding="SAME", W_std=1.5, b_std=0.05)
    return S.serial(c(), S.Relu(), c(), S.Relu(), c(), S.Relu(), S.GlobalAvgPool(), S.Dense(1))

def kfn(net, batch=None):
    if lib == "nt":
        import neural_tangents as nt
        f = net[2]
        if batch:
            f = nt.batch(f, batch_size=batch, store_on_device=False)
        return jax.jit(f, static_argnames="get") if not batch else f
    return kernel_fn(net, batch_size=batch)

if case in ("mlp", "cnn", "mlp_big"):
    shape = (n, 3072) if case.startswith("mlp") else (n, 8, 8, 3)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    batch = 2000 if case == "mlp_big" else None
    f = kfn(mlp() if case.startswith("mlp") else cnn(), batch)
    run = lambda: jax.block_until_ready(f(x, None, get=("nngp", "ntk")))
elif case == "gp":
    n_test = n // 4
    a = rng.normal(size=(n + n_test, 64)).astype(np.float32)
    k = jnp.asarray(a @ a.T / 64 + 0.1 * np.eye(n + n_test, dtype=np.float32))
    ktt, kst = k[:n, :n], k[n:, :n]
    y = jnp.asarray(rng.normal(size=(n, 10)), jnp.float32)
    if lib == "nt":
        def run():
            fn = predict.gp_inference(ktt, y, diag_reg=1e-4)
            return jax.block_until_ready(fn("nngp", kst, None))
    else:
        def run():
            return jax.block_until_ready(gp_inference(ktt, y, diag_reg=1e-4)("nngp", kst))
t = time.perf_counter(); run(); first = time.perf_counter() - t
best = min((lambda: (lambda t0: (run(), time.perf_counter() - t0)[1])(time.perf_counter()))() for _ in range(repeats))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first": first, "best": best, "peak_mb": peak}))
"""


def run(python: str, lib: str, case: str, n: int, repeats: int, timeout: float) -> dict | None:
    try:
        out = subprocess.run(
            [python, "-c", WORKER, lib, case, str(n), str(repeats)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1][:200] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nt-python", default="/tmp/nt-venv/bin/python")
    p.add_argument("--scale", type=float, default=0.25, help="fraction of the issue's sizes")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cases", default="mlp,cnn,gp", help="comma list of mlp,cnn,gp,mlp_big")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--label", default="", help="note printed above the table")
    args = p.parse_args(argv)
    sizes = {"mlp": 4000, "cnn": 200, "gp": 2000, "mlp_big": 20000}
    if args.label:
        print(args.label)
    print(
        f"{'case':8s} {'n':>6s} {'widelab s':>10s} {'NT s':>10s} {'NT/widelab':>10s}"
        f" {'wl first':>9s} {'NT first':>9s} {'first NT/wl':>11s} {'wl MB':>7s} {'NT MB':>7s}"
    )
    for case in args.cases.split(","):
        n = max(8, int(round(sizes[case] * args.scale)))
        t0 = time.time()
        # GP prediction takes milliseconds: best of at least 30 calls for both libraries.
        reps = max(args.repeats, 30) if case == "gp" else args.repeats
        wl = run(sys.executable, "wl", case, n, reps, args.timeout)
        nt = run(args.nt_python, "nt", case, n, reps, args.timeout)
        if "error" in wl or "error" in nt:
            print(f"{case:8s} {n:6d} widelab: {wl} | NT: {nt}")
            continue
        ratio = nt["best"] / wl["best"]
        print(
            f"{case:8s} {n:6d} {wl['best']:10.3f} {nt['best']:10.3f} {ratio:10.2f}"
            f" {wl['first']:9.2f} {nt['first']:9.2f} {nt['first'] / wl['first']:11.2f}"
            f" {wl['peak_mb']:7.0f} {nt['peak_mb']:7.0f}"
            f"   ({time.time() - t0:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
