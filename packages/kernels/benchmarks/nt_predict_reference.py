"""Write Neural Tangents 0.6.5 results of ``tests/nt_predict_programs.py`` for
``tests/test_nt_predict_programs.py``.

Run with the Neural Tangents venv (outside the repository; see ``nt_reference.py``)::

    /tmp/nt-venv/bin/python packages/kernels/benchmarks/nt_predict_reference.py

Each program runs unchanged with ``neural_tangents`` passed in as ``nt``; its float64
outputs are saved to ``tests/data/nt_predict.npz`` as ``<program>/<name>``.
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

import neural_tangents as nt  # noqa: E402
from neural_tangents import predict, stax  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location(
    "nt_predict_programs", HERE.parent / "tests" / "nt_predict_programs.py"
)
programs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(programs)


def main():
    out = {}
    for name, program in programs.PROGRAMS.items():
        for key, value in program(nt, stax, predict).items():
            out[f"{name}/{key}"] = np.asarray(value)
    path = HERE.parent / "tests" / "data" / "nt_predict.npz"
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    print(f"wrote {len(out)} reference arrays to {path}")


if __name__ == "__main__":
    main()
