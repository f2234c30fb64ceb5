"""Write Neural Tangents 0.6.5 reference kernels for the newer layers
(``tests/nt_nets_more.py``) to ``tests/data/nt_reference_more.npz``.

Run with the Neural Tangents venv (outside the repository), as ``nt_reference.py``::

    /tmp/nt-venv/bin/python packages/kernels/benchmarks/nt_reference_more.py
"""

import importlib.util
import pathlib
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")

from neural_tangents import stax  # noqa: E402
from nt_reference_cases import save_reference  # noqa: E402  (same folder)

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location(
    "nt_nets_more", HERE.parent / "tests" / "nt_nets_more.py"
)
nt_nets_more = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nt_nets_more)


def main():
    out = {}
    for case, net, x1, x2, mc in nt_nets_more.cases(stax):
        k = net[2](x1, x2, ("nngp", "ntk"), mask_constant=mc)
        out[case] = np.stack([np.asarray(k.nngp), np.asarray(k.ntk)])
    for case, net, x1, x2, kwargs, get in nt_nets_more.option_cases(stax):
        k = net[2](x1, x2, get, **kwargs)
        for name, value in zip(get, k):
            out[f"options|{case}|{name}"] = np.asarray(value)
    save_reference(out, HERE.parent / "tests" / "data" / "nt_reference_more.npz")


if __name__ == "__main__":
    main()
