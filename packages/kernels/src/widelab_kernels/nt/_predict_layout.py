"""Neural Tangents' array layouts for ``predict``, mapped onto widelab's matrices.

NT gives kernels in its interleaved layout: for targets ``y`` of shape ``(n, d1, ..., dk)``
and ``trace_axes`` the axes the kernel is shared over, a train-train kernel has the
shape ``zip(S, S)`` (``(n, n, d1, d1, ...)``) where ``S`` is ``y.shape`` without the
trace axes. widelab's inference works on matrices: the kernel as ``(N, N)`` with
``N = prod(S)`` and the targets as ``(N, C)`` with ``C`` the product of the trace axes'
sizes. The two are the same linear algebra; this module only moves axes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax.numpy as jnp

_KERNELS = ("nngp", "ntk")


def unzip(k):
    """``(a, a', b, b', ...)`` -> ``(a, b, ..., a', b', ...)``."""
    return jnp.transpose(k, tuple(range(0, k.ndim, 2)) + tuple(range(1, k.ndim, 2)))


def zip_axes(k, start: int = 0):
    """``(*lead, a, b, ..., a', b', ...)`` -> ``(*lead, a, a', b, b', ...)``."""
    half = (k.ndim - start) // 2
    perm = list(range(start))
    for i in range(half):
        perm += [start + i, start + half + i]
    return jnp.transpose(k, tuple(perm))


def as_matrix(k, where: str):
    """An NT-layout kernel ``zip(S1, S2)`` as the ``(prod S1, prod S2)`` matrix."""
    k = jnp.asarray(k)
    if k.ndim == 0 or k.ndim % 2:
        raise ValueError(
            f"{where} must have an even number of axes (NT's layout (n1, n2, d, d', ...)), "
            f"got shape {k.shape}"
        )
    rows, cols = k.shape[0::2], k.shape[1::2]
    return jnp.reshape(unzip(k), (math.prod(rows), math.prod(cols)))


def field(k, name: str):
    """The ``name`` kernel of a Kernel / named tuple / mapping, or ``k`` if it is an array."""
    if isinstance(k, Mapping):
        return k.get(name)
    if any(hasattr(k, g) for g in _KERNELS):
        return getattr(k, name, None)
    return k


def is_plain(k) -> bool:
    return not (isinstance(k, Mapping) or any(hasattr(k, g) for g in _KERNELS))


class Layout:
    """Targets ``y`` with ``trace_axes``: NT arrays <-> widelab ``(N, C)`` matrices."""

    def __init__(self, y_train, trace_axes: int | Sequence[int], where: str):
        y = jnp.asarray(y_train)
        if y.ndim < 1:
            raise ValueError(f"{where}: y_train must have a batch axis, got a scalar")
        axes = (trace_axes,) if isinstance(trace_axes, int) else tuple(trace_axes)
        ta = []
        for a in axes:
            if not -y.ndim <= int(a) < y.ndim:
                raise ValueError(
                    f"{where}: trace_axes={trace_axes!r} has axis {a} outside y_train's "
                    f"{y.ndim} axes (shape {y.shape})"
                )
            ta.append(int(a) % y.ndim)
        if 0 in ta:
            raise ValueError(
                f"{where}: trace_axes={trace_axes!r} includes the batch axis 0 of y_train; "
                "the kernel must keep the examples' axis"
            )
        self.where = where
        self.y = y
        self.trace = tuple(sorted(set(ta)))
        self.kept = tuple(a for a in range(y.ndim) if a not in self.trace)
        self.trace_shape = tuple(y.shape[a] for a in self.trace)
        self.train_shape = tuple(y.shape[a] for a in self.kept)
        self.y2 = self.flat(y)

    def flat(self, f):
        """A ``y``-shaped array (no leading axes) as ``(N, C)``."""
        f = jnp.moveaxis(jnp.asarray(f), self.trace, tuple(range(-len(self.trace), 0)))
        return jnp.reshape(f, (-1, math.prod(self.trace_shape)))

    def unflat(self, f, kept_shape: Sequence[int]):
        """``(*T, M, C)`` -> ``(*T, *y-like shape)`` with ``kept_shape`` on the kept axes."""
        lead = f.shape[:-2]
        f = jnp.reshape(f, lead + tuple(kept_shape) + self.trace_shape)
        src = tuple(range(f.ndim - len(self.trace), f.ndim))
        return jnp.moveaxis(f, src, tuple(len(lead) + a for a in self.trace))

    def full_shape(self, kept_shape: Sequence[int]) -> tuple[int, ...]:
        """The ``y``-like shape whose kept axes are ``kept_shape``."""
        shape = list(kept_shape)
        for a, c in zip(self.trace, self.trace_shape):
            shape.insert(a, c)
        return tuple(shape)

    def kernel(self, k, what: str, rows_free: bool = False):
        """An NT kernel (train-train, or test-train when ``rows_free``) as a matrix."""
        k = jnp.asarray(k)
        n_kept = len(self.train_shape)
        if (
            k.ndim != 2 * n_kept
            or k.shape[1::2] != self.train_shape
            or (not rows_free and k.shape[0::2] != self.train_shape)
        ):
            want = "zip(S_test, S)" if rows_free else "zip(S, S)"
            raise ValueError(
                f"{self.where}: {what} must have shape {want} with S = {self.train_shape} "
                f"(y_train's shape {tuple(self.y.shape)} without trace_axes {self.trace}), "
                f"got {k.shape}"
            )
        return as_matrix(k, f"{self.where}: {what}")

    def kernels(self, k, what: str, rows_free: bool = False, names=_KERNELS):
        """A kernel-like value as a plain matrix or a ``{name: matrix}`` mapping."""
        if is_plain(k):
            return self.kernel(k, what, rows_free)
        out = {}
        for g in names:
            v = field(k, g)
            if v is not None:
                out[g] = self.kernel(v, f"{what}.{g}", rows_free)
        return out

    def covariance(self, c, kept_shape: Sequence[int]):
        """``(*T, M, M)`` -> NT's interleaved ``(*T, m, m, d, d, ...)``."""
        lead = c.shape[:-2]
        c = jnp.reshape(c, lead + tuple(kept_shape) * 2)
        return zip_axes(c, len(lead))
