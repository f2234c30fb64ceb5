"""Input checks shared by the package (errors name the argument and what was wrong)."""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp


def check_user_items(user_items, name: str = "user_items") -> sp.csr_matrix:
    """Return ``user_items`` as float32 CSR after checking it is a finite sparse matrix.

    Raises:
        TypeError: when it is not a scipy.sparse matrix.
        ValueError: when it is not 2-D or holds NaN/inf.
    """
    if not sp.issparse(user_items):
        raise TypeError(
            f"{name} must be a scipy.sparse CSR matrix (users x items); "
            f"got {type(user_items).__name__}"
        )
    m = sp.csr_matrix(user_items, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {m.shape}")
    if not np.all(np.isfinite(m.data)):
        bad = int(np.flatnonzero(~np.isfinite(m.data))[0])
        row = int(np.searchsorted(m.indptr, bad, side="right") - 1)
        raise ValueError(f"{name} holds a non-finite value at row {row}, column {m.indices[bad]}")
    return m


def check_features(features, n_rows: int, name: str) -> np.ndarray:
    """Check a dense ``(n_rows, d)`` finite feature table and return it as float32."""
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] != n_rows:
        raise ValueError(f"{name} must have shape ({n_rows}, d); got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} holds NaN or inf")
    return f


def check_userids(userids, n_users: int) -> tuple[np.ndarray, bool]:
    """Return ``(ids as 1-D int array, was_scalar)``; raise IndexError for unknown ids."""
    scalar = np.isscalar(userids)
    ids = np.atleast_1d(np.asarray(userids))
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"userids must be an int or a 1-D integer array; got {ids.dtype} {ids.shape}"
        )
    if ids.size and (ids.min() < 0 or ids.max() >= n_users):
        bad = ids[(ids < 0) | (ids >= n_users)][0]
        raise IndexError(f"userid {bad} is unknown (the model was fitted on {n_users} users)")
    return ids.astype(np.int64), scalar


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread while implicit runs.

    implicit parallelises over users itself and warns (``RuntimeWarning``) when OpenBLAS or
    MKL also runs a thread pool; its documentation recommends
    ``threadpoolctl.threadpool_limits(1, "blas")``, which this context applies.
    """
    # Load implicit's extension modules (and the BLAS they link) before limiting, so
    # the limit covers every BLAS library in the process.
    import implicit.cpu.als  # noqa: F401
    import implicit.cpu.bpr  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
