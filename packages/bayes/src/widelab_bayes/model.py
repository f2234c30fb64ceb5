"""Bayesian neural networks from the core layer algebra: prior, likelihood, log-density.

A network written with :mod:`widelab_core.layers` in the NTK parameterization has every
raw parameter a priori ``N(0, 1)`` (the ``W_std``/``b_std`` of each layer multiply the
raw values in the forward pass). With a Gaussian likelihood ``y ~ N(f(x), sigma^2 I)``
for each output column, the log posterior density of the raw parameters ``theta`` is

    log p(theta | X, Y) = -|theta|^2 / 2 - |Y - f_theta(X)|_F^2 / (2 sigma^2) + const.

The network must end in a :class:`~widelab_core.layers.Dense` readout: the readout is
split off, so :mod:`widelab_bayes.repriorise` can re-express it relative to its exact
conditional posterior given the hidden features.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core import layers as L

Params = dict[str, Any]


class ModelError(ValueError):
    """A network or data set that cannot define a Bayesian neural network."""


def _sublayers(layer: L.Layer) -> list[L.Layer]:
    out = []
    for f in dataclasses.fields(layer):
        v = getattr(layer, f.name)
        if isinstance(v, L.Layer):
            out.append(v)
        elif isinstance(v, tuple) and v and all(isinstance(u, L.Layer) for u in v):
            out.extend(v)
    return out


def _check_ntk(layer: L.Layer, where: str = "net") -> None:
    p = getattr(layer, "parameterization", "ntk")
    if p != "ntk":
        raise ModelError(
            f"{layer.describe()} at {where} uses parameterization={p!r}; widelab_bayes "
            "needs the NTK parameterization (every raw parameter ~ N(0, 1))"
        )
    for i, sub in enumerate(_sublayers(layer)):
        _check_ntk(sub, f"{where}/{i}")


def split_readout(net: L.Layer) -> tuple[L.Layer, L.Dense, Callable[[Any, Any], Any]]:
    """Split a network into its hidden part ("body") and its final Dense readout.

    Args:
        net: a :class:`~widelab_core.layers.Dense` or a ``serial`` whose last layer is a
            Dense (possibly inside nested ``serial``s).

    Returns:
        ``(body, readout, join)``: ``body`` maps inputs to hidden features, ``readout``
        is the Dense layer, and ``join(body_params, readout_params)`` rebuilds the
        params pytree of ``net`` itself.

    Raises:
        ModelError: the network does not end in a Dense readout.

    Example:
        >>> from widelab_core import layers as L
        >>> body, readout, _ = split_readout(L.serial(L.Dense(8), L.Relu(), L.Dense(2)))
        >>> readout.out_dim
        2
    """
    if isinstance(net, L.Dense):
        return L.Serial(()), net, lambda bp, rp: rp
    if isinstance(net, L.Serial) and net.layers:
        last = net.layers[-1]
        if isinstance(last, L.Dense):
            return L.Serial(net.layers[:-1]), last, lambda bp, rp: tuple(bp) + (rp,)
        if isinstance(last, L.Serial):
            inner_body, readout, inner_join = split_readout(last)
            body = L.Serial(net.layers[:-1] + (inner_body,))
            return body, readout, lambda bp, rp: tuple(bp[:-1]) + (inner_join(bp[-1], rp),)
        raise ModelError(
            f"the network must end in a Dense readout, but its last layer is {last.describe()}"
        )
    raise ModelError(
        f"the network must be a Dense or a serial(...) ending in a Dense readout, got "
        f"{net.describe() if isinstance(net, L.Layer) else repr(net)}"
    )


def _as_data(x, y, out_dim: int) -> tuple[jax.Array, jax.Array]:
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim < 2:
        raise ModelError(f"x must have shape (N, ..., channels), got shape {tuple(x.shape)}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ModelError(f"y must have shape (N, {out_dim}), got shape {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ModelError(
            f"x and y disagree on the number of points: x has shape {tuple(x.shape)}, "
            f"y has shape {tuple(y.shape)}"
        )
    if y.shape[1] != out_dim:
        raise ModelError(
            f"y has {y.shape[1]} columns (shape {tuple(y.shape)}) but the readout has "
            f"out_dim={out_dim}"
        )
    for name, a in (("x", x), ("y", y)):
        bad = ~np.isfinite(np.asarray(a))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ModelError(f"{name} has {int(bad.sum())} non-finite entries (first at {idx})")
    dtype = jnp.zeros(()).dtype
    return x.astype(dtype), y.astype(dtype)


class BNN:
    """A Bayesian neural network: N(0, 1) prior on raw NTK parameters, Gaussian likelihood.

    Params are ``{"hidden": body_params, "readout": {"W": (d, k), "b": (k,)}}`` (``"b"``
    absent when the readout has ``b_std=None``).

    Args:
        net: a network ending in a Dense readout, NTK parameterization throughout.
        x: inputs ``(N, ..., channels)``.
        y: targets ``(N, k)`` (or ``(N,)`` for one output).
        noise_std: observation noise ``sigma`` of the Gaussian likelihood.

    Raises:
        ModelError: no Dense readout, non-NTK layers, bad shapes, non-finite data, a
            non-positive ``noise_std`` or hidden features that are not ``(N, width)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(16, W_std=1.5, b_std=0.1), L.Relu(), L.Dense(1, W_std=1.5))
        >>> x = jnp.linspace(-1, 1, 5)[:, None]
        >>> model = BNN(net, x, jnp.sin(3 * x), noise_std=0.1)
        >>> params = model.init(jax.random.key(0))
        >>> model.log_density(params).shape
        ()
    """

    def __init__(self, net: L.Layer, x, y, noise_std: float):
        if not isinstance(net, L.Layer):
            raise ModelError(f"net must be a layer value, got {net!r}")
        self.net = net
        self.body, self.readout, self._join = split_readout(net)
        _check_ntk(net)
        if not (math.isfinite(float(noise_std)) and float(noise_std) > 0):
            raise ModelError(f"noise_std must be positive and finite, got {noise_std!r}")
        self.noise_std = float(noise_std)
        self.x, self.y = _as_data(x, y, self.readout.out_dim)
        hidden_shape = self.body.output_shape(tuple(self.x.shape))
        if L.is_multi(hidden_shape) or len(hidden_shape) != 2:
            raise ModelError(
                f"the hidden features before the readout must have shape (N, width), got "
                f"{hidden_shape}; add Flatten() or a global pooling layer before the readout"
            )
        self.width = int(hidden_shape[-1])
        self.out_dim = int(self.readout.out_dim)
        self.has_bias = self.readout.b_std is not None

    @property
    def n_data(self) -> int:
        """Number of training points ``N``."""
        return int(self.x.shape[0])

    def init(self, key: jax.Array) -> Params:
        """Draw raw parameters from the prior (every entry ``N(0, 1)``)."""
        k1, k2 = jax.random.split(key)
        _, hidden = self.body.init(k1, tuple(self.x.shape))
        _, readout = self.readout.init(k2, (self.x.shape[0], self.width))
        return {"hidden": hidden, "readout": readout}

    def net_params(self, params: Params) -> Any:
        """The same parameters in the pytree layout of ``net.init``."""
        return self._join(params["hidden"], params["readout"])

    def features(self, hidden: Any, x=None) -> jax.Array:
        """Hidden features ``h(x)`` of shape ``(n, width)`` (training inputs by default)."""
        return self.body.apply(hidden, self.x if x is None else x)

    def apply(self, params: Params, x=None) -> jax.Array:
        """Network outputs ``f(x)`` of shape ``(n, k)`` (training inputs by default)."""
        return self.readout.apply(params["readout"], self.features(params["hidden"], x))

    def log_prior(self, params: Params) -> jax.Array:
        """``sum log N(theta_i; 0, 1)`` over every raw parameter."""
        leaves = jax.tree.leaves(params)
        sq = sum(jnp.sum(jnp.square(v)) for v in leaves)
        n = sum(v.size for v in leaves)
        return -0.5 * sq - 0.5 * n * math.log(2 * math.pi)

    def log_likelihood_of_outputs(self, f: jax.Array) -> jax.Array:
        """``sum log N(y_ij; f_ij, sigma^2)`` for outputs ``f`` of shape ``(N, k)``."""
        s2 = self.noise_std**2
        r = self.y - f
        return -0.5 * jnp.sum(r * r) / s2 - 0.5 * r.size * math.log(2 * math.pi * s2)

    def log_likelihood(self, params: Params) -> jax.Array:
        """Gaussian log-likelihood of the training targets."""
        return self.log_likelihood_of_outputs(self.apply(params))

    def log_density(self, params: Params) -> jax.Array:
        """Unnormalised log posterior: ``log_prior + log_likelihood``."""
        return self.log_prior(params) + self.log_likelihood(params)
