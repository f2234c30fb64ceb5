"""The repriorised density with the data split across devices, and chains spread over them.

For a training set too large for one device, the readout-marginalised density of
:class:`~widelab_bayes.repriorise.Repriorised` (Hron et al. 2022, Sec. 4)

    log p(theta) + sum_c log N(y_c; 0, Phi Phi^T + sigma^2 I)

is computed with the rows of ``X`` and ``Y`` split over the devices of a
``jax.sharding.Mesh`` axis (``jax.shard_map``). Each device computes the features
``Phi_i`` of its own rows only; then

* primal form (``p <= N``): ``G = sum_i Phi_i^T Phi_i + sigma^2 I``, ``Phi^T Y =
  sum_i Phi_i^T Y_i`` and ``|Y|^2`` are sums over data shards (``psum``), and the
  ``p x p`` Cholesky factorisation is done on every device (Woodbury, as in
  :meth:`~widelab_bayes.repriorise.Repriorised.log_marginal_likelihood`);
* dual form (``p > N``): each device gathers the features and computes its own block
  of rows ``Phi_i Phi^T`` of the ``N x N`` matrix (the ``O(N^2 p)`` part, split by
  rows); the row-sharded matrix is then factorised (one ``N x N`` Cholesky, placed by
  the compiler).

Gradients flow through ``shard_map`` (the transpose of a ``psum`` over replicated
parameters and of an ``all_gather`` are handled by JAX), so the value and the gradient
equal the single-device ones up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .model import ModelError
from .repriorise import Repriorised, _highest, spd_logdet_quad


def data_mesh(num_devices: int | None = None, axis: str = "data") -> Mesh:
    """A one-axis mesh over the first ``num_devices`` local devices (default: all).

    Raises:
        ValueError: more devices asked for than there are.
    """
    devices = jax.devices()
    n = len(devices) if num_devices is None else int(num_devices)
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices must be in [1, {len(devices)}], got {num_devices!r}")
    return Mesh(devices[:n], (axis,))


def sharded_log_hidden_density(
    rep: Repriorised, mesh: Mesh | None = None, axis: str = "data"
) -> Callable[[Any], jax.Array]:
    """``hidden -> log p(theta) + log N(Y; 0, Phi Phi^T + sigma^2 I)`` with data sharded.

    The same value as :meth:`~widelab_bayes.repriorise.Repriorised.log_hidden_density`
    (in ``rep.form``), with the training rows split over ``mesh``'s ``axis``.

    Args:
        rep: the repriorised posterior (its model's data are split).
        mesh: a mesh with axis ``axis`` (default: :func:`data_mesh` over all devices).
        axis: the mesh axis the data rows are split over.

    Returns:
        A function of the hidden parameters; differentiable, jit-able.

    Raises:
        ModelError: the number of training points is not a multiple of the number of
            data shards.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> from widelab_bayes import BNN, Repriorised
        >>> x = jnp.linspace(-1, 1, 8)[:, None]
        >>> rep = Repriorised(BNN(L.serial(L.Dense(4), L.Relu(), L.Dense(1)), x, x, 0.1))
        >>> h = rep.init(jax.random.key(0))["hidden"]
        >>> f = sharded_log_hidden_density(rep, data_mesh(1))
        >>> bool(jnp.allclose(f(h), rep.log_hidden_density(h)))
        True
    """
    mesh = data_mesh(axis=axis) if mesh is None else mesh
    shards = mesh.shape[axis]
    m = rep.model
    n, k = m.y.shape
    if n % shards:
        raise ModelError(
            f"the {n} training points cannot be split evenly over {shards} data shards; use "
            "a multiple of the number of devices"
        )
    s2 = m.noise_std**2
    dual = rep.form == "dual"
    x_spec = P(axis, *([None] * (m.x.ndim - 1)))
    x = jax.device_put(m.x, NamedSharding(mesh, x_spec))
    y = jax.device_put(m.y, NamedSharding(mesh, P(axis, None)))

    @_highest
    def local_primal(hidden, x_i, y_i):
        """Per-shard products summed over shards (replicated results)."""
        phi_i = rep.design(hidden, x_i)
        G = jax.lax.psum(phi_i.T @ phi_i, axis)
        return G, jax.lax.psum(phi_i.T @ y_i, axis), jax.lax.psum(jnp.sum(y_i * y_i), axis)

    @_highest
    def local_dual(hidden, x_i):
        """This shard's rows ``Phi_i Phi^T`` of the N x N matrix (sharded result)."""
        phi_i = rep.design(hidden, x_i)
        return phi_i @ jax.lax.all_gather(phi_i, axis, tiled=True).T

    if dual:
        rows = jax.shard_map(local_dual, mesh=mesh, in_specs=(P(), x_spec), out_specs=P(axis, None))
    else:
        sums = jax.shard_map(
            local_primal,
            mesh=mesh,
            in_specs=(P(), x_spec, P(axis, None)),
            out_specs=(P(), P(), P()),
        )

    @_highest
    def log_hidden_density(hidden):
        if dual:
            C = rows(hidden, x)
            logdet, quad = spd_logdet_quad(C + s2 * jnp.eye(n, dtype=C.dtype), m.y)
        else:  # Woodbury on the p x p matrix
            G, b, yy = sums(hidden, x, y)
            p = G.shape[0]
            logdet_g, quad_g = spd_logdet_quad(G + s2 * jnp.eye(p, dtype=G.dtype), b)
            logdet = logdet_g + (n - p) * math.log(s2)
            quad = (yy - quad_g) / s2
        lml = -0.5 * quad - 0.5 * k * logdet - 0.5 * n * k * math.log(2 * math.pi)
        return m.log_prior(hidden) + lml

    return log_hidden_density


def spread_chains(init_positions: jax.Array, mesh: Mesh | None = None, axis: str = "chains"):
    """Place ``(chains, D)`` starting points with the chains split over devices.

    The samplers vmap over chains inside one compiled program, which follows its
    inputs' sharding, so each device then runs its own chains.

    Args:
        init_positions: ``(chains, D)`` starting points.
        mesh: a mesh with axis ``axis`` (default: all local devices).
        axis: the mesh axis the chains are split over.

    Returns:
        The same array, sharded over chains.

    Raises:
        ValueError: the number of chains is not a multiple of the number of devices.
    """
    mesh = data_mesh(axis=axis) if mesh is None else mesh
    chains = init_positions.shape[0]
    if chains % mesh.shape[axis]:
        raise ValueError(
            f"chains={chains} cannot be spread evenly over {mesh.shape[axis]} devices; use a "
            "multiple of the number of devices"
        )
    return jax.device_put(init_positions, NamedSharding(mesh, P(axis, None)))
