"""Helpers shared by widelab's test suites (importable from every package's tests)."""

from __future__ import annotations

import contextlib

import jax
import numpy as np


@contextlib.contextmanager
def float64():
    """Run a block with ``jax_enable_x64`` on (float64 arrays by default)."""
    with jax.enable_x64(True):
        yield


def relative_frobenius(a, b) -> float:
    """``||a - b||_F / ||b||_F``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def standard_error(samples, axis: int = 0):
    """Standard error of the mean of i.i.d. ``samples`` along ``axis``."""
    s = np.asarray(samples, dtype=np.float64)
    return s.std(axis=axis, ddof=1) / np.sqrt(s.shape[axis])
