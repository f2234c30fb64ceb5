"""``Aggregate``: graph networks, each vertex receiving the sum of its predecessors."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ._base import Layer, LayerError, ShapeError, check_single, current_pattern

IMPLEMENTATIONS = ("DENSE", "SPARSE")


@dataclasses.dataclass(frozen=True)
class Aggregate(Layer):
    """Sum over the predecessors of every vertex of a graph given with each input
    (Neural Tangents' ``stax.Aggregate``; graph neural networks as in Du et al. 2019,
    "Graph Neural Tangent Kernel", eq. 4 without the degree normalisation).

    The vertices are the positions along ``aggregate_axis`` (spatial axes of a
    ``(batch, ..., channels)`` input). The graph of each example comes with the call,
    ``net.apply(params, x, pattern=p)``; without it the layer is the identity. With
    ``V`` the flattened vertex axes, the output is ``y[n, j] = sum_i A[n, i, j] x[n, i]``
    for every remaining axis: ``A[n, i, j] = w`` is an edge of weight ``w`` from tail
    ``i`` to head ``j``. The map is linear and fixed per example, so at infinite width
    the covariance transforms as ``K'[n1, n2] = A[n1]^T K[n1, n2] A[n2]`` on the vertex
    axes (NNGP and NTK alike).

    Pattern formats (``implementation``):

    * ``"DENSE"``: ``to_dense(pattern)`` (``pattern`` itself when ``to_dense`` is
      ``None``) is the adjacency tensor of shape ``(batch, *vertex_shape,
      *vertex_shape)``, tails first. Cost ``O(V^2)`` per example.
    * ``"SPARSE"``: an integer array of edges ``(batch, n_edges, K, 2)`` (``K`` the
      number of aggregated axes; ``(batch, n_edges, 2)`` when ``K == 1``), the last axis
      holding the tail's and the head's coordinates. Repeated edges add up. An edge with
      a negative (or too large) coordinate is dropped, so ``-1`` pads examples with fewer
      edges. Cost ``O(V + E)`` per example.

    Args:
        aggregate_axis: the input axes of the vertices (spatial axes: not the batch axis
            0 nor the channel axis -1); ``None``: every spatial axis.
        implementation: ``"DENSE"`` or ``"SPARSE"``.
        to_dense: for ``"DENSE"``, a function turning the given ``pattern`` into the
            dense adjacency tensor (for graphs stored in another format).

    Raises:
        ValueError: an unknown ``implementation``.
        ShapeError: the aggregated axes are not spatial axes, or a pattern's shape does
            not fit the input.
        LayerError: a padding mask reaches the layer (not supported).

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> x = jnp.arange(6.0).reshape(1, 3, 2)  # one graph, 3 vertices, 2 channels
        >>> edges = jnp.array([[[0, 1], [2, 1], [1, 0]]])  # 0->1, 2->1, 1->0
        >>> L.Aggregate(implementation="SPARSE").apply((), x, pattern=edges)[0]
        Array([[2., 3.],
               [4., 6.],
               [0., 0.]], dtype=float32)
    """

    aggregate_axis: int | tuple[int, ...] | None = None
    implementation: str = "DENSE"
    to_dense: Callable[[Any], Any] | None = None

    def __post_init__(self):
        axis = self.aggregate_axis
        if axis is not None:
            axis = (int(axis),) if isinstance(axis, int) else tuple(int(a) for a in axis)
            object.__setattr__(self, "aggregate_axis", axis)
        impl = str(getattr(self.implementation, "value", self.implementation)).upper()
        if impl not in IMPLEMENTATIONS:
            raise ValueError(
                f"Aggregate: implementation={self.implementation!r} is not one of {IMPLEMENTATIONS}"
            )
        object.__setattr__(self, "implementation", impl)

    def axes(self, rank: int) -> tuple[int, ...]:
        """The aggregated axes of a rank-``rank`` input, non-negative and sorted."""
        spatial = tuple(range(1, rank - 1))
        if self.aggregate_axis is None:
            axes = spatial
        else:
            axes = tuple(sorted(a % rank if -rank <= a < rank else a for a in self.aggregate_axis))
        if not axes or any(a not in spatial for a in axes) or len(set(axes)) != len(axes):
            raise ShapeError(
                self,
                f"aggregate_axis={self.aggregate_axis} must name distinct spatial axes of a "
                f"rank-{rank} input (not the batch axis 0 nor the channel axis -1)",
            )
        return axes

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        self.axes(len(shape))
        return shape, ()

    def apply_masked(self, params, x, mask, key):
        pattern = current_pattern()
        if pattern is None:
            return x, mask
        if mask is not None:
            raise LayerError(self, "padding masks (mask_constant) are not supported")
        x = jnp.asarray(x)
        axes = self.axes(x.ndim)
        vertex_shape = tuple(x.shape[a] for a in axes)
        front = jnp.moveaxis(x, axes, tuple(range(1, len(axes) + 1)))
        flat = jnp.reshape(
            front, (x.shape[0], math.prod(vertex_shape), *front.shape[1 + len(axes) :])
        )
        y = self.aggregate(flat, pattern, vertex_shape)
        y = jnp.reshape(y, front.shape)
        return jnp.moveaxis(y, tuple(range(1, len(axes) + 1)), axes), mask

    def aggregate(self, values: jax.Array, pattern: Any, vertex_shape: tuple[int, ...]):
        """``out[n, j, ...] = sum_i A[n, i, j] values[n, i, ...]`` for ``values`` of shape
        ``(batch, V, ...)`` with ``V = prod(vertex_shape)`` flattened vertices.

        The kernel rule applies this same map to each side of a covariance.
        """
        n, v = values.shape[0], values.shape[1]
        if self.implementation == "DENSE":
            a = jnp.asarray(pattern if self.to_dense is None else self.to_dense(pattern))
            want = (n, *vertex_shape, *vertex_shape)
            if tuple(a.shape) != want:
                raise ShapeError(
                    self,
                    f"the dense pattern has shape {tuple(a.shape)}; inputs with batch {n} "
                    f"and vertex axes {vertex_shape} need {want}",
                )
            a = jnp.reshape(a, (n, v, v)).astype(values.dtype)
            return jnp.einsum("nv...,nvw->nw...", values, a)
        tails, heads, valid = self._edges(pattern, n, vertex_shape)
        weight = valid.astype(values.dtype)

        def one(vals, t, h, w):
            msg = vals[t] * jnp.reshape(w, (-1,) + (1,) * (vals.ndim - 1))
            return jax.ops.segment_sum(msg, h, num_segments=v)

        return jax.vmap(one)(values, tails, heads, weight)

    def _edges(self, pattern, n: int, vertex_shape: tuple[int, ...]):
        """Flat ``(tails, heads, valid)`` of shape ``(batch, n_edges)`` each."""
        p = jnp.asarray(pattern)
        k = len(vertex_shape)
        if not jnp.issubdtype(p.dtype, jnp.integer):
            raise ValueError(
                f"{self.describe()}: a SPARSE pattern holds integer vertex coordinates, got "
                f"dtype {p.dtype}"
            )
        if k == 1 and p.ndim == 3:
            p = p[:, :, None, :]
        if p.ndim != 4 or p.shape[0] != n or p.shape[2] != k or p.shape[3] != 2:
            raise ShapeError(
                self,
                f"the SPARSE pattern has shape {tuple(jnp.shape(pattern))}; inputs with batch "
                f"{n} and {k} vertex axes need (batch, n_edges, {k}, 2)"
                + (" or (batch, n_edges, 2)" if k == 1 else ""),
            )
        sizes = jnp.reshape(jnp.asarray(vertex_shape, p.dtype), (1, 1, k, 1))
        ok = jnp.all((p >= 0) & (p < sizes), axis=(2, 3))
        strides = [math.prod(vertex_shape[i + 1 :]) for i in range(k)]
        flat = jnp.sum(p * jnp.reshape(jnp.asarray(strides, p.dtype), (1, 1, k, 1)), axis=2)
        flat = jnp.where(ok[..., None], flat, 0)
        return flat[..., 0], flat[..., 1], ok
