"""Write Neural Tangents 0.6.5 reference kernels for tests/test_nt_reference.py.

Run with the Neural Tangents venv (outside the repository), e.g.::

    uv venv /tmp/nt-venv -p 3.11
    uv pip install --python /tmp/nt-venv neural-tangents==0.6.5 jax==0.4.30 jaxlib==0.4.30
    /tmp/nt-venv/bin/python packages/kernels/benchmarks/nt_reference.py

It builds the networks of ``tests/nt_nets.py`` with ``neural_tangents.stax`` and saves
their float64 NNGP and NTK to ``tests/data/nt_reference.npz``.
"""

import importlib.util
import pathlib
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")

from neural_tangents import stax  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("nt_nets", HERE.parent / "tests" / "nt_nets.py")
nt_nets = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nt_nets)


def main():
    out = {}
    for case, net, x1, x2, mc in nt_nets.cases(stax, widelab=False):
        k = net[2](x1, x2, ("nngp", "ntk"), mask_constant=mc)
        out[case] = np.stack([np.asarray(k.nngp), np.asarray(k.ntk)])
    path = HERE.parent / "tests" / "data" / "nt_reference.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {len(out)} reference kernels to {path}")


if __name__ == "__main__":
    main()
