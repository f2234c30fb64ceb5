"""Helpers shared by widelab's test suites (importable from every package's tests)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence

import jax
import numpy as np


@contextlib.contextmanager
def float64():
    """Run a block with ``jax_enable_x64`` on (float64 arrays by default)."""
    with jax.enable_x64(True):
        yield


def load_sibling(test_file: str, name: str):
    """The helper module ``name.py`` next to ``test_file`` (test folders are not
    packages, so their helpers are loaded by path)."""
    path = pathlib.Path(test_file).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def relative_frobenius(a, b) -> float:
    """``||a - b||_F / ||b||_F``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def standard_error(samples, axis: int = 0):
    """Standard error of the mean of i.i.d. ``samples`` along ``axis``."""
    s = np.asarray(samples, dtype=np.float64)
    return s.std(axis=axis, ddof=1) / np.sqrt(s.shape[axis])


def run_local_processes(
    args_for: Callable[[int, str], Sequence[str]],
    n: int = 2,
    *,
    devices_per_process: int = 2,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
) -> list[tuple[int, str]]:
    """Run ``n`` Python processes of one ``jax.distributed`` job on this machine.

    Each process gets ``devices_per_process`` fake CPU devices and the command line
    ``python *args_for(rank, coordinator)``, where ``coordinator`` is ``localhost:PORT``
    on a free port. All are started before any is waited for (they rendezvous at the
    coordinator); any still running after ``timeout`` seconds is killed.

    Returns:
        ``(returncode, combined stdout and stderr)`` per rank.
    """
    with socket.socket() as s:
        s.bind(("localhost", 0))
        coordinator = f"localhost:{s.getsockname()[1]}"
    full_env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}",
        JAX_PLATFORMS="cpu",
        **(env or {}),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, *args_for(rank, coordinator)],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(n)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, out) for p, out in zip(procs, outs)]
