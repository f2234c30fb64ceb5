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

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core import layers as L

from .likelihoods import Categorical, Gaussian
from .priors import PriorError, walk_priors

Params = dict[str, Any]


class ModelError(ValueError):
    """A network or data set that cannot define a Bayesian neural network."""


def _check_ntk(net: L.Layer) -> None:
    """Every raw parameter of ``net`` must be ``N(0, 1)`` a priori (the prior registry)."""
    try:
        entries = walk_priors(net)
    except PriorError as e:
        raise ModelError(str(e)) from None
    for where, layer, kind in entries:
        if kind not in ("ntk", "none"):
            raise ModelError(
                f"{layer.describe()} at {where} uses parameterization={kind!r}; widelab_bayes "
                "needs the NTK parameterization (every raw parameter ~ N(0, 1))"
            )


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

        from .likelihoods import Categorical, Gaussian
    from .priors import PriorError, walk_priors
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
    """A Bayesian neural network: N(0, 1) prior on raw NTK parameters, Gaussian or softmax likelihood.

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

        from .likelihoods import Categorical, Gaussian
    from .priors import PriorError, walk_priors
                >>> net = L.serial(L.Dense(16, W_std=1.5, b_std=0.1), L.Relu(), L.Dense(1, W_std=1.5))
                >>> x = jnp.linspace(-1, 1, 5)[:, None]
                >>> model = BNN(net, x, jnp.sin(3 * x), noise_std=0.1)
                >>> params = model.init(jax.random.key(0))
                >>> model.log_density(params).shape
                ()
    """

    def __init__(self, net: L.Layer, x, y, noise_std: float | None = None, *, likelihood=None):
        if not isinstance(net, L.Layer):
            raise ModelError(f"net must be a layer value, got {net!r}")
        self.net = net
        self.body, self.readout, self._join = split_readout(net)
        _check_ntk(net)
        if (noise_std is None) == (likelihood is None):
            raise ModelError(
                "give exactly one of noise_std (Gaussian likelihood) and likelihood, got "
                f"noise_std={noise_std!r}, likelihood={likelihood!r}"
            )
        try:
            if likelihood is None:
                likelihood = Gaussian(noise_std)
            if not isinstance(likelihood, (Gaussian, Categorical)):
                raise ModelError(
                    f"likelihood must be a Gaussian or a Categorical, got {likelihood!r}"
                )
            y = likelihood.targets(y, self.readout.out_dim)
        except ModelError:
            raise
        except ValueError as e:
            raise ModelError(str(e)) from None
        self.likelihood = likelihood
        #: the Gaussian likelihood's ``sigma`` (``None`` for a categorical likelihood)
        self.noise_std = likelihood.noise_std if isinstance(likelihood, Gaussian) else None
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
        """Log-likelihood of the targets given outputs ``f`` of shape ``(N, k)``
        (Gaussian: ``sum log N(y_ij; f_ij, sigma^2)``; categorical: ``sum log
        softmax(f_i)[y_i]``)."""
        return self.likelihood.log_likelihood(self.y, f)

    def log_likelihood(self, params: Params) -> jax.Array:
        """Log-likelihood of the training targets."""
        return self.log_likelihood_of_outputs(self.apply(params))

    def log_density(self, params: Params) -> jax.Array:
        """Unnormalised log posterior: ``log_prior + log_likelihood``."""
        return self.log_prior(params) + self.log_likelihood(params)
