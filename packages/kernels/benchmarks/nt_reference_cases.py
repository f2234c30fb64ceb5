"""Write Neural Tangents 0.6.5 reference kernels of the networks in
``tests/nt_nets_NAME.py`` to ``tests/data/nt_reference_NAME.npz``, for NAME in
``layers`` (transposed/local convolution, resize, index), ``concat`` (concatenation
along spatial axes), ``dot_general`` (DotGeneral with a constant), ``aggregate``
(graph networks; a case may carry a fifth item, the kernel function's keyword
arguments such as ``pattern``), ``prod`` (FanInProd of nonlinear branches) and
``masking`` (``mask_constant`` through transposed/local convolution and resize). A
networks module may set ``KERNEL_KWARGS``, passed to every ``kernel_fn`` call.

Run with the Neural Tangents venv (outside the repository), as ``nt_reference.py``::

    /tmp/nt-venv/bin/python packages/kernels/benchmarks/nt_reference_cases.py \
        layers concat dot_general aggregate prod masking
"""

import importlib.util
import os
import pathlib
import sys
import tempfile
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")

from neural_tangents import stax  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
NAMES = ("layers", "concat", "dot_general", "aggregate", "prod", "masking")


def write(name: str) -> None:
    """Compute every case of ``tests/nt_nets_<name>.py`` with NT and write the .npz."""
    module = f"nt_nets_{name}"
    spec = importlib.util.spec_from_file_location(module, HERE.parent / "tests" / f"{module}.py")
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    out = {}
    module_kwargs = getattr(nets, "KERNEL_KWARGS", {})
    for case, net, x1, x2, *kwargs in nets.cases(stax):
        k = net[2](x1, x2, ("nngp", "ntk"), **module_kwargs, **(kwargs[0] if kwargs else {}))
        out[case] = np.stack([np.asarray(k.nngp), np.asarray(k.ntk)])
        print(case, out[case].shape)
    save_reference(out, HERE.parent / "tests" / "data" / f"nt_reference_{name}.npz")


def save_reference(out: dict, path: pathlib.Path) -> None:
    """Write the arrays ``out`` to ``path`` as a compressed npz, atomically (temporary
    file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez_compressed(tmp, **out)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print(f"wrote {len(out)} reference kernels to {path}")


def main(argv: list[str]) -> int:
    names = argv or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        print(f"unknown fixture set(s) {unknown}; choose from {list(NAMES)}", file=sys.stderr)
        return 2
    for name in names:
        write(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
