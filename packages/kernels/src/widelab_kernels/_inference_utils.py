"""Validation and linear-algebra helpers shared by :mod:`widelab_kernels.inference`.

Owned by the kernels-predict engineer; import from here rather than rewriting.
"""

from __future__ import annotations

import collections
import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_GETS = ("nngp", "ntk")
#: Prediction modes: the two kernels, and the NTK-GP posterior (He et al. 2020).
_PREDICTIONS = ("nngp", "ntk", "ntkgp")


# Validation -------------------------------------------------------------------------


def _concrete(x) -> np.ndarray | None:
    """``x`` as a NumPy array, or ``None`` while tracing."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


@jax.jit
def _all_finite(x) -> jax.Array:
    return jnp.all(jnp.isfinite(x))


def _check_finite(x, what: str, ok=None) -> None:
    """Raise if ``x`` (concrete) has non-finite entries; ``ok`` is a precomputed verdict."""
    if isinstance(x, jax.core.Tracer):
        return
    if ok is None:
        ok = _all_finite(x)
    if not bool(ok):
        v = np.asarray(x)
        bad = np.argwhere(~np.isfinite(v))[0]
        raise ValueError(f"{what} has non-finite entries (first at index {tuple(bad)})")


def _float_array(x) -> jax.Array:
    """``x`` as a jax array of a floating dtype (integers become the default float)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


def _as_float(x, what: str) -> jax.Array:
    x = _float_array(x)
    _check_finite(x, what)
    return x


def _targets(y_train, where: str) -> jax.Array:
    y = _as_float(y_train, f"{where}: y_train")
    if y.ndim != 2:
        raise ValueError(f"{where}: y_train must be (n_train, k), got shape {y.shape}")
    return y


@jax.jit
def _max_abs(k) -> jax.Array:
    """``max |K|``: NaN or infinite exactly when ``K`` has a non-finite entry."""
    return jnp.max(jnp.abs(k))


#: The symmetry check compares about this many rows of ``K`` with the columns of ``K^T``.
SYMMETRY_ROWS = 128


@jax.jit
def _max_asymmetry(k) -> jax.Array:
    """``max |K - K^T|`` over every ``s``-th row (``s = n // SYMMETRY_ROWS``): a wrong
    matrix is asymmetric nearly everywhere, and the full transpose costs more than the
    rest of a GP prediction's validation."""
    step = max(1, k.shape[0] // SYMMETRY_ROWS)
    return jnp.max(jnp.abs(k[::step, :] - k.T[::step, :]))


@jax.jit
def _symmetrized(k) -> jax.Array:
    return 0.5 * (k + k.T)


def _square(k, n: int, what: str) -> jax.Array:
    """``k`` as a finite, symmetric ``(n, n)`` float matrix (symmetrized if the checked
    rows show rounding-level asymmetry; an error if they show more)."""
    k = _float_array(k)  # finiteness is checked below, with the other reductions
    if k.shape != (n, n):
        raise ValueError(f"{what} must have shape ({n}, {n}) to match y_train, got {k.shape}")
    if isinstance(k, jax.core.Tracer):
        return _symmetrized(k)
    # Separate small compiled reductions: XLA's CPU backend fuses several reductions
    # of one matrix into a much slower single pass.
    scale, asym = jax.device_get((_max_abs(k), _max_asymmetry(k)))
    _check_finite(k, what, np.isfinite(scale))
    scale = max(float(scale), np.finfo(k.dtype).tiny)
    if float(asym) > 1e4 * np.finfo(k.dtype).eps * scale:
        raise ValueError(
            f"{what} is not symmetric: max |K - K^T| = {float(asym):.3g} (max |K| = {scale:.3g})"
        )
    # Rounding-level asymmetry left in unchecked rows is harmless: the Cholesky factor
    # reads one triangle and eigh symmetrizes.
    return k if float(asym) == 0.0 else _symmetrized(k)


def _is_plain(k) -> bool:
    return not (isinstance(k, Mapping) or hasattr(k, "nngp") or hasattr(k, "ntk"))


def _field_or_none(k, name: str) -> Any:
    return k.get(name) if isinstance(k, Mapping) else getattr(k, name, None)


def _field(k, name: str, what: str, *, plain_ok: bool) -> Any:
    """The ``name`` matrix of a kernel-like ``k`` (Kernel, named tuple, mapping, array)."""
    if isinstance(k, Mapping):
        v = k.get(name)
    elif hasattr(k, "nngp") or hasattr(k, "ntk"):
        v = getattr(k, name, None)
    elif plain_ok:
        v = k
    else:
        raise ValueError(
            f"{what} is a plain matrix but both 'nngp' and 'ntk' are needed here; pass a "
            "Kernel, kernel_fn(..., get=('nngp', 'ntk')) or {'nngp': ..., 'ntk': ...}"
        )
    if v is None:
        raise ValueError(f"{what} has no {name!r} matrix; compute it with get including {name!r}")
    return v


def _names(get, allowed: tuple[str, ...] = _PREDICTIONS) -> tuple[str, ...]:
    """``get`` as a tuple of names from ``allowed`` (``None``: ``("nngp", "ntk")``)."""
    names = _GETS if get is None else ((get,) if isinstance(get, str) else tuple(get))
    if not names or any(g not in allowed for g in names):
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"get must be one of {options} or a tuple of them, got {get!r}")
    return names


def _kernel_of(g: str) -> str:
    """The kernel a prediction mode is computed from (``ntkgp`` uses the NTK)."""
    return "ntk" if g == "ntkgp" else g


@functools.cache
def _result_type(names: tuple[str, ...]):
    return collections.namedtuple("Predictions", names)


def _select(get, results: dict) -> Any:
    if isinstance(get, str):
        return results[get]
    names = _names(get)
    return _result_type(names)(*(results[g] for g in names))


@functools.partial(jax.jit, static_argnames="absolute")
def _regularized(k: jax.Array, diag_reg: float, absolute: bool) -> jax.Array:
    n = k.shape[0]
    scale = diag_reg if absolute else diag_reg * jnp.trace(k) / n
    # A select on the diagonal fuses into one pass (a scatter costs an extra copy).
    diag = jax.lax.broadcasted_iota(jnp.int32, k.shape, 0) == jax.lax.broadcasted_iota(
        jnp.int32, k.shape, 1
    )
    return jnp.where(diag, k + jnp.asarray(scale, k.dtype), k)


@functools.partial(jax.jit, static_argnames="absolute")
def _cholesky_checked(k, diag_reg=0.0, absolute=True):
    k = _regularized(k, diag_reg, absolute)
    # ``k`` is symmetric already (``_square``): skip jnp.linalg.cholesky's symmetrization.
    chol = jax.lax.linalg.cholesky(k, symmetrize_input=False)
    return chol, _all_finite(jnp.diagonal(chol))


def _cholesky(k: jax.Array, what: str, diag_reg: float = 0.0, absolute: bool = True) -> jax.Array:
    """Lower Cholesky factor of ``k`` plus the ``diag_reg`` regulariser (one compiled
    call); a clear error if it is not positive definite."""
    chol, ok = _cholesky_checked(k, diag_reg, absolute)
    if not isinstance(chol, jax.core.Tracer) and not bool(ok):
        lam = np.linalg.eigvalsh(np.asarray(_regularized(k, diag_reg, absolute), np.float64))
        raise ValueError(
            f"{what} is not positive definite (Cholesky failed; eigenvalues in "
            f"[{lam[0]:.3g}, {lam[-1]:.3g}]); increase diag_reg"
        )
    return chol


def _eigh(k: jax.Array, what: str) -> tuple[jax.Array, jax.Array]:
    evals, evecs = jnp.linalg.eigh(k)
    e = _concrete(evals)
    if e is not None:
        top = max(float(np.max(np.abs(e))), np.finfo(e.dtype).tiny)
        tol = 10 * max(e.shape[0], 10) * np.finfo(e.dtype).eps * top
        if float(e[0]) < -tol:
            raise ValueError(
                f"{what} is not positive semi-definite: smallest eigenvalue {float(e[0]):.3g} "
                f"(largest {float(e[-1]):.3g})"
            )
    return jnp.maximum(evals, 0.0), evecs


@contextlib.contextmanager
def _concrete_eval():
    """Evaluate eagerly even while ``jit`` is tracing (the results are cached).

    Outside a trace this does nothing: ``jax.ensure_compile_time_eval`` would run
    compiled helpers primitive by primitive, several times slower.
    """
    if isinstance(jnp.zeros(()) + 0, jax.core.Tracer):
        with jax.ensure_compile_time_eval():
            yield
    else:
        yield


def _compile_time(fn: Callable) -> Callable:
    """Run ``fn`` eagerly even inside ``jit`` (its results are cached across calls)."""

    @functools.wraps(fn)
    def wrapped(*args):
        with _concrete_eval():
            return fn(*args)

    return wrapped


def _times(t, learning_rate: float, size: int, dtype) -> jax.Array:
    t = jnp.asarray(t, dtype)
    v = _concrete(t)
    if v is not None and (np.any(np.isnan(v)) or np.any(v < 0)):
        raise ValueError(f"t must be >= 0 (None or inf for the limit), got {v}")
    return t * (learning_rate / size)


def _phi(evals: jax.Array, tau: jax.Array) -> jax.Array:
    """``(1 - exp(-lam tau)) / lam`` per time and eigenvalue, with its limit ``tau`` at 0.

    Returns shape ``tau.shape + evals.shape``.
    """
    lam = jnp.reshape(evals, (1,) * tau.ndim + evals.shape)
    tt = jnp.reshape(tau, tau.shape + (1,))
    safe = jnp.where(lam > 0, lam, 1.0)
    zero_limit = jnp.where(jnp.isinf(tt), 0.0, tt)
    return jnp.where(lam > 0, -jnp.expm1(-safe * tt) / safe, zero_limit)


def _in_eigenbasis(evecs: jax.Array, coeffs: jax.Array, rhs: jax.Array) -> jax.Array:
    """``V diag(c_t) V^T rhs`` for each time ``t`` (coeffs ``(*T, n)``, rhs ``(n, c)``)."""
    proj = evecs.T @ rhs  # (n, c)
    scaled = coeffs[..., :, None] * jnp.reshape(proj, (1,) * (coeffs.ndim - 1) + proj.shape)
    return jnp.einsum("ij,...jc->...ic", evecs, scaled)


class _Layout:
    """Maps kernels and outputs of either layout to a matrix acting on ``(N, c)``."""

    def __init__(self, y: jax.Array, trace_axes: Sequence[int], where: str):
        ta = tuple(int(a) % 2 for a in trace_axes)
        if ta not in ((1,), ()):
            raise ValueError(
                f"{where}: trace_axes must be (-1,) (kernels (n, n)) or () (kernels "
                f"(n, k, n, k)) for targets (n, k), got {tuple(trace_axes)}"
            )
        self.traced = ta == (1,)
        self.n, self.k = y.shape
        self.where = where

    def matrix(self, kernel, rows: int | None, what: str) -> jax.Array:
        """Kernel ``(rows, n)`` / ``(rows, k, n, k)`` as a 2-D matrix (rows None: square)."""
        kernel = _as_float(kernel, f"{self.where}: {what}")
        n, k = self.n, self.k
        if kernel.ndim == 0:
            raise ValueError(f"{self.where}: {what} must be a matrix, got a scalar")
        if self.traced:
            want = (n, n) if rows is None else (kernel.shape[0], n)
        else:
            want = (n, k, n, k) if rows is None else (kernel.shape[0], k, n, k)
        if kernel.shape != want:
            raise ValueError(
                f"{self.where}: {what} must have shape {want} for targets of shape "
                f"({n}, {k}) and trace_axes={'(-1,)' if self.traced else '()'}, "
                f"got {kernel.shape}"
            )
        mat = kernel if self.traced else jnp.reshape(kernel, (want[0] * k, n * k))
        if rows is None:
            return _square(mat, mat.shape[0], f"{self.where}: {what}")
        return mat

    def flat(self, f: jax.Array) -> jax.Array:
        return f if self.traced else jnp.reshape(f, f.shape[:-2] + (-1, 1))

    def unflat(self, f: jax.Array) -> jax.Array:
        return f if self.traced else jnp.reshape(f, f.shape[:-2] + (-1, self.k))


def _outputs(f0, shape, dtype, what: str) -> jax.Array:
    f0 = _as_float(f0, what).astype(dtype)
    if f0.ndim > len(shape) or f0.shape != tuple(shape)[len(shape) - f0.ndim :]:
        raise ValueError(f"{what} must have shape {tuple(shape)} (or broadcast), got {f0.shape}")
    return jnp.broadcast_to(jnp.reshape(f0, (1,) * (len(shape) - f0.ndim) + f0.shape), shape)


def _lead(x: jax.Array, ndim: int) -> jax.Array:
    """``x`` with leading unit axes up to ``ndim`` (explicit broadcasting over times)."""
    return jnp.reshape(x, (1,) * (ndim - x.ndim) + x.shape)


def _matrix_fn(evecs: jax.Array, coeffs: jax.Array) -> jax.Array:
    """``V diag(c) V^T`` for each leading index of ``coeffs`` (``(*T, n)`` -> ``(*T, n, n)``)."""
    return jnp.einsum("ij,...j,kj->...ik", evecs, coeffs, evecs)
