"""Write Neural Tangents 0.6.5 reference kernels of the DotGeneral
networks (``tests/nt_nets_dot_general.py``) to
``tests/data/nt_reference_dot_general.npz``.

Run with the Neural Tangents venv (outside the repository), as ``nt_reference.py``::

    /tmp/nt-venv/bin/python packages/kernels/benchmarks/nt_reference_dot_general.py
"""

import importlib.util
import os
import pathlib
import tempfile
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")

from neural_tangents import stax  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location(
    "nt_nets_dot_general", HERE.parent / "tests" / "nt_nets_dot_general.py"
)
nt_nets_dot_general = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nt_nets_dot_general)


def main():
    out = {}
    for case, net, x1, x2 in nt_nets_dot_general.cases(stax):
        k = net[2](x1, x2, ("nngp", "ntk"))
        out[case] = np.stack([np.asarray(k.nngp), np.asarray(k.ntk)])
        print(case, out[case].shape)
    path = HERE.parent / "tests" / "data" / "nt_reference_dot_general.npz"
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez_compressed(tmp, **out)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print(f"wrote {len(out)} reference kernels to {path}")


if __name__ == "__main__":
    main()
