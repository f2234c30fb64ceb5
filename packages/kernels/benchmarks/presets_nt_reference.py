"""Write Neural Tangents 0.6.5 reference kernels for tests/test_presets.py.

Run with the Neural Tangents venv (outside the repository)::

    /tmp/nt-venv/bin/python packages/kernels/benchmarks/presets_nt_reference.py

The Myrtle and CNN-GP architectures are written out here with ``neural_tangents.stax``
independently of ``widelab_kernels.presets`` (stage by stage from the papers), and their
float64 NNGP and NTK on fixed random images are saved to
``tests/data/presets_nt_reference.npz``.
"""

import math
import pathlib
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")

from neural_tangents import stax  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
S2 = math.sqrt(2.0)


def conv_relu(n):
    return [stax.Conv(1, (3, 3), padding="SAME", W_std=S2), stax.Relu()] * n


def myrtle_nt(stages):
    pool = stax.AvgPool((2, 2), strides=(2, 2))
    return stax.serial(
        *conv_relu(stages[0]),
        pool,
        *conv_relu(stages[1]),
        pool,
        *conv_relu(stages[2]),
        stax.GlobalAvgPool(),
        stax.Dense(10, W_std=S2),
    )


def cnngp_nt(depth, readout):
    layers = []
    for _ in range(depth):
        layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=S2, b_std=0.0), stax.Relu()]
    layers.append(stax.GlobalAvgPool() if readout == "pool" else stax.Flatten())
    layers.append(stax.Dense(10, W_std=S2, b_std=0.0))
    return stax.serial(*layers)


def inputs():
    rng = np.random.default_rng(14)
    return rng.normal(size=(3, 8, 8, 3)), rng.normal(size=(2, 8, 8, 3))


CASES = {
    "myrtle5": lambda: myrtle_nt((2, 1, 1)),
    "myrtle7": lambda: myrtle_nt((2, 2, 2)),
    "cnngp-3-pool": lambda: cnngp_nt(3, "pool"),
    "cnngp-3-flatten": lambda: cnngp_nt(3, "flatten"),
}


def main():
    x1, x2 = inputs()
    out = {"x1": x1, "x2": x2}
    for name, build in CASES.items():
        kf = build()[2]
        for tag, b in (("self", None), ("cross", x2)):
            k = kf(x1, b, ("nngp", "ntk"))
            out[f"{name}/{tag}"] = np.stack([np.asarray(k.nngp), np.asarray(k.ntk)])
    path = HERE.parent / "tests" / "data" / "presets_nt_reference.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {len(out) - 2} reference kernels to {path}")


if __name__ == "__main__":
    main()
