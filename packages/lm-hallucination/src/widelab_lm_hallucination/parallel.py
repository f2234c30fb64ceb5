"""Placing training state on a device mesh: replicated, or sharded over the ``"data"``
axis (fully sharded data parallelism), and gathering it back to the host for a
checkpoint."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

AXIS = "data"


def data_mesh(devices: Sequence[jax.Device]) -> jax.sharding.Mesh:
    """A one-axis mesh named ``"data"`` over ``devices`` (which may span processes)."""
    return jax.sharding.Mesh(np.asarray(list(devices)), (AXIS,))


def leaf_spec(shape: Sequence[int], n: int) -> jax.sharding.PartitionSpec:
    """The partition of one array over ``n`` devices: its largest axis whose length ``n``
    divides (the first of equal ones) split along ``"data"``; no such axis (scalars,
    short vectors): replicated.

    Example:
        >>> [tuple(leaf_spec(shape, 8)) for shape in [(37, 16), (2, 16, 8), (37,), ()]]
        [(None, 'data'), (None, 'data', None), (), ()]
    """
    best = None
    for i, size in enumerate(shape):
        if size % n == 0 and (best is None or size > shape[best]):
            best = i
    if best is None:
        return jax.sharding.PartitionSpec()
    return jax.sharding.PartitionSpec(*(AXIS if i == best else None for i in range(len(shape))))


def fsdp_sharding(tree, mesh: jax.sharding.Mesh):
    """One ``NamedSharding`` per leaf of ``tree`` that splits each array over the mesh's
    ``"data"`` axis (:func:`leaf_spec`): every device holds ``1/n`` of each sharded
    parameter and of its optimizer moments (the moments have the parameter's shape, so
    they are split alike), as in ZeRO stage 3 (Rajbhandari et al. 2020, Sec. 5) /
    fully sharded data parallelism. A compiled step on arrays placed this way lets
    GSPMD (Xu et al. 2021) insert the collectives: all-gathers of the weights and
    cross-device sums of the gradients, each device keeping its own slice (the CPU
    back end compiles the sums as all-reduces).

    Args:
        tree: a pytree of arrays (or anything with a ``shape``).
        mesh: a mesh with a ``"data"`` axis (:func:`data_mesh`).

    Returns:
        A pytree of ``jax.sharding.NamedSharding`` with the structure of ``tree``.

    Example:
        >>> mesh = data_mesh(jax.devices()[:1])
        >>> tuple(fsdp_sharding({"w": np.zeros((4, 6))}, mesh)["w"].spec)
        (None, 'data')
    """
    n = mesh.shape[AXIS]
    return jax.tree.map(lambda x: jax.sharding.NamedSharding(mesh, leaf_spec(np.shape(x), n)), tree)


def to_mesh(tree, sharding):
    """Place host values (equal on every process) on a mesh that may span processes:
    each process transfers only the shards its own devices hold (its rows of a batch
    sharded by row, its slices of a sharded parameter, a full copy of a replicated
    value). ``sharding`` is one sharding for every leaf or a tree of them."""

    def put(x, s):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])

    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree.map(lambda x: put(x, sharding), tree)
    return jax.tree.map(put, tree, sharding)


def constrain(tree, mesh: jax.sharding.Mesh | None):
    """Inside a compiled function: ask for :func:`fsdp_sharding`'s layout of every leaf
    (nothing when ``mesh`` is None)."""
    if mesh is None:
        return tree
    return jax.tree.map(jax.lax.with_sharding_constraint, tree, fsdp_sharding(tree, mesh))


def to_host(tree):
    """The arrays of ``tree`` in a form ``np.asarray`` can read on this process: arrays
    split over several processes are gathered (a collective, so every process of the
    job must call this at the same point) into host copies; the others are returned
    as they are."""
    from jax.experimental import multihost_utils

    def host(x):
        if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
            return multihost_utils.process_allgather(x, tiled=True)
        return x

    return jax.tree.map(host, tree)
