"""Network presets for Bayesian studies, written in the core layer algebra.

* :func:`fcn`: a fully connected ReLU network of any depth.
* :func:`resnet`: a fully connected residual network whose blocks combine the residual
  branch and the skip connection as ``alpha * residual + sqrt(1 - alpha^2) * skip``,
  the scaled residual connection of Hron et al. 2022 (Sec. 6), which keeps the
  activations' second moment fixed through depth so the network has a well-defined
  wide limit.

Both end in a ``Dense`` readout with NTK parameterization throughout, so both can be
repriorised (:class:`~widelab_bayes.repriorise.Repriorised`).
"""

from __future__ import annotations

import math

import jax
from widelab_core import layers as L


def _check(name, value, ok, allowed):
    if isinstance(value, bool) or not ok(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def scale(c: float) -> L.Layer:
    """Multiply by the constant ``c`` (a parameter-free elementwise layer).

    Its dual kernel is ``c^2`` times the input covariance, so kernel packages can use it.

    Example:
        >>> import jax.numpy as jnp
        >>> scale(0.5).apply((), jnp.ones((1, 2))).tolist()
        [[0.5, 0.5]]
    """
    c = float(c)

    def times(x: jax.Array) -> jax.Array:
        return x * c

    times.__name__ = f"times_{c:g}"
    return L.Elementwise(
        times, nngp_fn=lambda cov12, var1, var2: c * c * cov12, d_nngp_fn=lambda *a: c * c
    )


def scaled_residual(residual: L.Layer, alpha: float) -> L.Layer:
    """``alpha * residual(x) + sqrt(1 - alpha^2) * x`` from core's ``FanOut``/``FanInSum``.

    Args:
        residual: the residual branch (its output shape must equal its input shape).
        alpha: weight of the residual branch, in ``[0, 1]``.

    Raises:
        ValueError: ``alpha`` outside ``[0, 1]``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> block = scaled_residual(L.serial(L.Relu(), L.Dense(4)), alpha=0.6)
        >>> block.init(jax.random.key(0), (2, 4))[0]
        (2, 4)
    """
    _check("alpha", alpha, lambda a: 0.0 <= float(a) <= 1.0, "in [0, 1]")
    a = float(alpha)
    return L.serial(
        L.FanOut(2),
        L.parallel(L.serial(residual, scale(a)), scale(math.sqrt(1.0 - a * a))),
        L.FanInSum(),
    )


def fcn(
    width: int,
    depth: int = 1,
    out_dim: int = 1,
    *,
    W_std: float = 1.5,
    b_std: float | None = 0.1,
) -> L.Layer:
    """``depth`` hidden ReLU layers of ``width`` units and a ``Dense(out_dim)`` readout.

    Args:
        width: hidden width (>= 1).
        depth: number of hidden layers (>= 1).
        out_dim: number of outputs (>= 1).
        W_std, b_std: weight and bias scales of every ``Dense`` (NTK parameterization).

    Raises:
        ValueError: a non-positive size.

    Example:
        >>> len(fcn(8, depth=3).layers)  # 3 x (Dense, Relu) + readout
        7
    """
    for name, v in (("width", width), ("depth", depth), ("out_dim", out_dim)):
        _check(name, v, lambda n: isinstance(n, int) and n >= 1, "a positive integer")
    layers = []
    for _ in range(depth):
        layers += [L.Dense(width, W_std=W_std, b_std=b_std), L.Relu()]
    return L.serial(*layers, L.Dense(out_dim, W_std=W_std, b_std=b_std))


def resnet(
    width: int,
    depth: int = 2,
    out_dim: int = 1,
    *,
    alpha: float = 0.5,
    W_std: float = 1.5,
    b_std: float | None = 0.1,
) -> L.Layer:
    """A fully connected residual network with scaled residual connections.

    ``Dense(width)``, then ``depth`` blocks ``x -> alpha * Dense(Relu(x)) +
    sqrt(1 - alpha^2) * x``, then ``Relu`` and a ``Dense(out_dim)`` readout.

    Args:
        width: hidden width (>= 1).
        depth: number of residual blocks (>= 1).
        out_dim: number of outputs (>= 1).
        alpha: residual weight in ``[0, 1]`` (Hron et al. 2022, Sec. 6).
        W_std, b_std: weight and bias scales of every ``Dense`` (NTK parameterization).

    Raises:
        ValueError: a non-positive size or ``alpha`` outside ``[0, 1]``.

    Example:
        >>> import jax
        >>> resnet(16, depth=2, out_dim=3).init(jax.random.key(0), (5, 4))[0]
        (5, 3)
    """
    for name, v in (("width", width), ("depth", depth), ("out_dim", out_dim)):
        _check(name, v, lambda n: isinstance(n, int) and n >= 1, "a positive integer")
    blocks = [
        scaled_residual(L.serial(L.Relu(), L.Dense(width, W_std=W_std, b_std=b_std)), alpha)
        for _ in range(depth)
    ]
    return L.serial(
        L.Dense(width, W_std=W_std, b_std=b_std),
        *blocks,
        L.Relu(),
        L.Dense(out_dim, W_std=W_std, b_std=b_std),
    )


NETWORKS = {"fcn": fcn, "resnet": resnet}
