"""Empirical NTK: widelab's implementations against Neural Tangents 0.6.5, side by side.

Usage (NT in its own venv, see ``bench_vs_nt.py``)::

    uv run python packages/kernels/benchmarks/bench_empirical_vs_nt.py \\
        --nt-python /tmp/nt-venv/bin/python [--small]

Cases: a 3-layer ReLU ConvNet (width 128, 8x8x3 inputs, 32 x 32 pairs) and a 3-layer
ReLU MLP (width 1024, 128 x 128 pairs), both with a 10-output readout, ``vmap_axes=0``,
default ``trace_axes``. Each (library, implementation) runs in a fresh subprocess on the
same network function and float32 parameters drawn from NumPy, so the results are
comparable; the script prints the warm time (best of ``--repeats`` after one compiled
call) and the maximum relative difference to widelab's Jacobian contraction.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent

WORKER = r"""
import json, sys, time
import numpy as np
import jax, jax.numpy as jnp
lib, case, impl, small, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
if lib == "nt":
    import neural_tangents as nt
else:
    import widelab_kernels.nt as nt
rng = np.random.default_rng(0)
f32 = lambda a: jnp.asarray(a, jnp.float32)
dn = ("NHWC", "HWIO", "NHWC")
if case == "conv":
    w, n, size = (16, 4, 8) if small else (128, 32, 8)
    ps = [f32(rng.standard_normal((3, 3, 3, w)) / 3), f32(rng.standard_normal((3, 3, w, w)) / (3 * w**.5)),
          f32(rng.standard_normal((3, 3, w, w)) / (3 * w**.5)), f32(rng.standard_normal((w * size * size, 10)) / (w * size * size)**.5)]
    def f(p, x):
        for k in p[:3]:
            x = jax.nn.relu(jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn))
        return jnp.reshape(x, (x.shape[0], -1)) @ p[3]
    x1 = f32(rng.standard_normal((n, size, size, 3)))
else:
    w, n, d = (64, 8, 16) if small else (1024, 128, 64)
    dims = (d, w, w, w, 10)
    ps = [f32(rng.standard_normal((a, b)) / a**.5) for a, b in zip(dims[:-1], dims[1:])]
    def f(p, x):
        for k in p[:-1]:
            x = jax.nn.relu(x @ k)
        return x @ p[-1]
    x1 = f32(rng.standard_normal((n, d)))
x2 = f32(rng.standard_normal(x1.shape))
fn = jax.jit(nt.empirical_ntk_fn(f, vmap_axes=0, implementation=impl))
t0 = time.perf_counter(); k = fn(x1, x2, ps).block_until_ready(); first = time.perf_counter() - t0
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter(); fn(x1, x2, ps).block_until_ready(); best = min(best, time.perf_counter() - t0)
np.save(sys.argv[6], np.asarray(k))
print(json.dumps({"first": first, "warm": best}))
"""

IMPLS = {1: "jacobian", 2: "ntvp", 3: "structured"}


def run(python, lib, case, impl, small, repeats, out, timeout):
    cmd = [python, "-c", WORKER, lib, case, str(impl), "1" if small else "0", str(repeats), out]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    if res.returncode != 0:
        return None, res.stderr.strip().splitlines()[-1][:100]
    return json.loads(res.stdout.strip().splitlines()[-1]), ""


def main(argv=None) -> int:
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nt-python", default="/tmp/nt-venv/bin/python")
    p.add_argument("--small", action="store_true", help="reduced sizes (a smoke run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args(argv)
    tmp = pathlib.Path("/tmp")
    for case in ("conv", "mlp"):
        ref = None
        print(f"{case}: library  implementation  first_s  warm_s  max_rel_diff")
        for lib, python in (("widelab", sys.executable), ("nt", a.nt_python)):
            for impl, name in IMPLS.items():
                out = str(tmp / f"bench_emp_{case}_{lib}_{impl}.npy")
                t, err = run(python, lib, case, impl, a.small, a.repeats, out, a.timeout)
                if t is None:
                    print(f"  {lib:8s} {name:11s} failed: {err}")
                    continue
                k = np.load(out)
                ref = k if ref is None else ref
                diff = float(np.max(np.abs(k - ref)) / np.max(np.abs(ref)))
                print(f"  {lib:8s} {name:11s} {t['first']:8.3f} {t['warm']:8.4f}  {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
