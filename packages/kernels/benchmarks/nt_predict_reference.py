"""Write Neural Tangents 0.6.5 results of ``tests/nt_predict_programs.py``,
``tests/nt_custom_programs.py`` and ``tests/nt_ode_state_programs.py`` for
``tests/test_nt_predict.py``, ``tests/test_nt_custom.py`` and ``tests/test_nt_ode_state.py``.

Run with the Neural Tangents venv (outside the repository; see ``nt_reference.py``)::

    /tmp/nt-venv/bin/python packages/kernels/benchmarks/nt_predict_reference.py [FILE ...]

(``FILE``: program files to run, e.g. ``nt_ode_state_programs.py``; default all.)

Each program runs unchanged with ``neural_tangents`` passed in as ``nt``; its float64
outputs are saved to ``tests/data/nt_predict.npz`` (``nt_custom.npz``) as
``<program>/<name>``.
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

import neural_tangents as nt  # noqa: E402
from neural_tangents import predict, stax  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
FILES = {
    "nt_predict_programs.py": "nt_predict.npz",
    "nt_custom_programs.py": "nt_custom.npz",
    "nt_ode_state_programs.py": "nt_ode_state.npz",
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name[:-3], HERE.parent / "tests" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    chosen = sys.argv[1:] or list(FILES)
    unknown = [c for c in chosen if c not in FILES]
    if unknown:
        raise SystemExit(f"unknown program files {unknown}; choose from {list(FILES)}")
    for source, target in FILES.items():
        if source not in chosen:
            continue
        out = {}
        for name, program in _load(source).PROGRAMS.items():
            for key, value in program(nt, stax, predict).items():
                out[f"{name}/{key}"] = np.asarray(value)
        path = HERE.parent / "tests" / "data" / target
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        os.close(fd)
        np.savez_compressed(tmp, **out)
        os.replace(tmp, path)
        print(f"wrote {len(out)} reference arrays to {path}")


if __name__ == "__main__":
    main()
