"""Concrete dropout: a dropout layer whose drop probability is learned.

Gal, Hron, Kendall (2017), "Concrete Dropout", NeurIPS.

The Bernoulli drop mask is replaced by its Concrete (relaxed Bernoulli) relaxation
(their eq. 5)

    z = sigmoid( (log p - log(1 - p) + log u - log(1 - u)) / t ),   u ~ U(0, 1),

with temperature ``t = 0.1``; the layer outputs ``x * (1 - z) / (1 - p)``. The
variational objective of a network with dropout before each weight matrix ``W_l``
(``K_l`` input units) is, after multiplying by ``2 / (tau N)`` (their eq. 3-4 and the
authors' reference implementation),

    loss = NLL / N + sum_l [ l^2 / (tau N) * ||W_l||^2 / (1 - p_l)
                             - 2 / (tau N) * K_l * H(p_l) ],

``H(p) = -p log p - (1 - p) log(1 - p)``, with prior lengthscale ``l`` and model
precision ``tau`` (``tau = 1`` for heteroscedastic models, whose noise is learned).
The spatial variant drops whole channels (``K`` = number of channels).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core.extend import check_single
from widelab_core.layers import Layer, Serial

from .priors import effective_weights


@dataclasses.dataclass(frozen=True)
class ConcreteDropout(Layer):
    """Dropout with a learned probability ``p`` (params: ``{"logit_p": log(p/(1-p))}``).

    Gal, Hron, Kendall (2017), eq. 5: a relaxed Bernoulli mask with temperature
    ``temperature``. Without a key, ``apply`` is the identity (the mask's expectation
    after the ``1/(1-p)`` rescaling); with ``key`` it draws a mask (use a fresh key per
    Monte Carlo sample for MC-dropout prediction).

    Args:
        init_p: the initial drop probability in ``(0, 1)``.
        temperature: the Concrete temperature ``t > 0`` (0.1 in the paper).
        spatial: drop whole channels (one mask value per example and channel), for
            convolutional feature maps ``(batch, ..., channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(ConcreteDropout(init_p=0.2), L.Dense(1))
        >>> shape, params = net.init(jax.random.key(0), (4, 3))
        >>> round(float(dropout_probability(params[0])), 3)
        0.2
    """

    init_p: float = 0.1
    temperature: float = 0.1
    spatial: bool = False

    def __post_init__(self):
        if not 0.0 < float(self.init_p) < 1.0:
            raise ValueError(f"ConcreteDropout: init_p must be in (0, 1), got {self.init_p}")
        if not float(self.temperature) > 0:
            raise ValueError(f"ConcreteDropout: temperature must be > 0, got {self.temperature}")

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        if self.spatial and len(shape) < 3:
            from widelab_core.layers import ShapeError

            raise ShapeError(self, f"spatial dropout needs (batch, ..., channels), got {shape}")
        dtype = jnp.zeros(()).dtype
        logit = math.log(self.init_p) - math.log1p(-self.init_p)
        return shape, {"logit_p": jnp.asarray(logit, dtype)}

    def apply_masked(self, params, x, mask, key):
        if key is None:
            return x, mask
        logit_p = params["logit_p"]
        p = jax.nn.sigmoid(logit_p)
        if self.spatial:
            noise_shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        else:
            noise_shape = x.shape
        eps = jnp.finfo(x.dtype).eps
        u = jax.random.uniform(key, noise_shape, x.dtype, minval=eps, maxval=1.0 - eps)
        drop = jax.nn.sigmoid((logit_p + jnp.log(u) - jnp.log1p(-u)) / self.temperature)
        return x * (1.0 - drop) / (1.0 - p), mask


def dropout_probability(params) -> jax.Array:
    """The drop probability ``p = sigmoid(logit_p)`` of a :class:`ConcreteDropout`'s params.

    Args:
        params: the layer's params ``{"logit_p": ...}``.

    Returns:
        ``p`` (a scalar array).

    Raises:
        ValueError: params without ``logit_p``.
    """
    if not isinstance(params, dict) or "logit_p" not in params:
        raise ValueError(f"expected ConcreteDropout params with 'logit_p', got {params!r}")
    return jax.nn.sigmoid(params["logit_p"])


def _leaves(layer: Layer, params) -> list[tuple[Layer, object]]:
    if isinstance(layer, Serial):
        out = []
        for sub, p in zip(layer.layers, params):
            out.extend(_leaves(sub, p))
        return out
    return [(layer, params)]


def concrete_dropout_regulariser(
    net: Layer,
    params,
    *,
    n_data: int,
    lengthscale: float = 1e-2,
    precision: float = 1.0,
) -> jax.Array:
    """The Concrete dropout regulariser of every ``ConcreteDropout`` in a serial network.

    Gal, Hron, Kendall (2017), eq. 3-4 scaled by ``2 / (tau N)`` as in the authors' code:
    for each dropout layer followed (possibly after parameter-free layers) by a weight
    layer with params ``{"W": (..., K, out)}``,

        l^2 / (tau N) * ||W||^2 / (1 - p) + 2 / (tau N) * K * (p log p + (1-p) log(1-p)).

    ``W`` is the effective weight (NTK-parameterised ``Dense`` layers are rescaled by
    ``W_std / sqrt(fan_in)``) and ``K`` its input dimension (channels for convolutions).

    Args:
        net: a layer or ``serial`` network (nested ``serial`` allowed).
        params: its params.
        n_data: the training set size ``N >= 1``.
        lengthscale: prior lengthscale ``l > 0``.
        precision: model precision ``tau > 0``.

    Returns:
        The regulariser (a scalar; add it to the mean negative log-likelihood).

    Raises:
        ValueError: bad scalars, or a dropout layer with no weight layer after it.
    """
    if int(n_data) < 1:
        raise ValueError(f"n_data must be >= 1, got {n_data}")
    if not lengthscale > 0 or not precision > 0:
        raise ValueError(f"lengthscale and precision must be > 0, got {lengthscale}, {precision}")
    return _regulariser(net, params, n_data, lengthscale, precision)


def _regulariser(net, params, n_data, lengthscale, precision):
    weight_reg = lengthscale**2 / (precision * n_data)
    dropout_reg = 2.0 / (precision * n_data)
    leaves = _leaves(net, params)
    total = jnp.zeros(())
    for i, (layer, p_params) in enumerate(leaves):
        if not isinstance(layer, ConcreteDropout):
            continue
        nxt = next(
            ((lay, pp) for lay, pp in leaves[i + 1 :] if isinstance(pp, dict) and "W" in pp),
            None,
        )
        if nxt is None:
            raise ValueError(
                f"ConcreteDropout at position {i} has no weight layer after it to regularise"
            )
        w = effective_weights(*nxt)
        p = dropout_probability(p_params)
        k = w.shape[-2]
        neg_entropy = p * jnp.log(p) + (1 - p) * jnp.log1p(-p)
        total = total + weight_reg * jnp.sum(w**2) / (1 - p) + dropout_reg * k * neg_entropy
    return total


def dropout_probabilities(net: Layer, params) -> list[float]:
    """The learned ``p`` of every :class:`ConcreteDropout` in a serial network, in order.

    Args:
        net: a layer or (nested) ``serial`` network.
        params: its params.

    Returns:
        One float per dropout layer.
    """
    return [
        float(dropout_probability(pp))
        for layer, pp in _leaves(net, params)
        if isinstance(layer, ConcreteDropout)
    ]


def heteroscedastic_nll(out: jax.Array, y: jax.Array) -> jax.Array:
    """Mean heteroscedastic Gaussian NLL (times 2, constant dropped), as in the paper's code.

    ``out[..., 0]`` is the mean and ``out[..., 1]`` the log noise variance ``s``:
    ``mean_i [exp(-s_i) (y_i - mu_i)^2 + s_i]``.

    Args:
        out: ``(n, 2)`` network outputs.
        y: ``(n,)`` or ``(n, 1)`` targets.

    Returns:
        A scalar.

    Raises:
        ValueError: shapes that do not match.
    """
    y = jnp.reshape(y, (-1,))
    if out.ndim != 2 or out.shape[-1] != 2 or out.shape[0] != y.shape[0]:
        raise ValueError(f"need out (n, 2) and y (n,), got {out.shape} and {y.shape}")
    mu, s = out[:, 0], out[:, 1]
    return jnp.mean(jnp.exp(-s) * (y - mu) ** 2 + s)


class MCPrediction(NamedTuple):
    """MC-dropout predictive moments.

    Attributes:
        mean: predictive mean ``(1/T) sum_t mu_t``.
        epistemic: variance of the sampled means ``mu_t`` (model uncertainty).
        aleatoric: mean of the predicted noise variances ``exp(s_t)`` (zero for
            homoscedastic outputs).
        total: ``epistemic + aleatoric``.
    """

    mean: jax.Array
    epistemic: jax.Array
    aleatoric: jax.Array
    total: jax.Array


def mc_dropout_predict(
    net: Layer,
    params,
    x: jax.Array,
    *,
    key: jax.Array,
    n_samples: int = 50,
    heteroscedastic: bool = True,
) -> MCPrediction:
    """Monte Carlo dropout prediction (Gal, Hron, Kendall 2017, Section 4).

    Runs ``n_samples`` stochastic forward passes with independent masks. For a
    heteroscedastic network (outputs ``(mu, log sigma^2)``) the predictive variance
    splits into the epistemic part ``Var_t[mu_t]`` and the aleatoric part
    ``E_t[sigma_t^2]``.

    Args:
        net: the network.
        params: its params.
        x: inputs.
        key: a ``jax.random`` key.
        n_samples: number of passes ``T >= 2``.
        heteroscedastic: the last output axis holds ``(mu, log sigma^2)``.

    Returns:
        An :class:`MCPrediction`; arrays have the output shape without the last axis
        when heteroscedastic, else the full output shape.

    Raises:
        ValueError: ``n_samples < 2`` or an output without 2 channels when
            heteroscedastic.
    """
    if int(n_samples) < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    keys = jax.random.split(key, n_samples)
    outs = jax.vmap(lambda k: net.apply(params, x, key=k))(keys)
    if heteroscedastic:
        if outs.shape[-1] != 2:
            raise ValueError(f"heteroscedastic output needs 2 channels, got shape {outs.shape[1:]}")
        mus, var = outs[..., 0], jnp.exp(outs[..., 1])
        aleatoric = jnp.mean(var, axis=0)
    else:
        mus = outs
        aleatoric = jnp.zeros(outs.shape[1:], outs.dtype)
    epistemic = jnp.var(mus, axis=0)
    return MCPrediction(jnp.mean(mus, axis=0), epistemic, aleatoric, epistemic + aleatoric)


class DropoutStudy(NamedTuple):
    """Learned drop probabilities against dataset size.

    Attributes:
        sizes: dataset sizes ``N``.
        probabilities: ``(len(sizes), n_dropout_layers)`` learned ``p``.
        noise_std: learned aleatoric std at ``x = 0`` per size, from the noise head with
            the dropout mask at its mean (true value ``noise``).
    """

    sizes: np.ndarray
    probabilities: np.ndarray
    noise_std: np.ndarray


def regression_network(hidden: int = 64, depth: int = 3, init_p: float = 0.1) -> Serial:
    """The study's heteroscedastic MLP: ``[CD, Dense(hidden), Relu] * depth, CD, Dense(2)``.

    Args:
        hidden: hidden width (>= 1).
        depth: number of hidden layers (>= 1).
        init_p: initial drop probability of every :class:`ConcreteDropout`.

    Returns:
        A ``serial`` network with standard-parameterised ``Dense`` layers whose two
        outputs are the mean and the log noise variance.

    Raises:
        ValueError: non-positive sizes.
    """
    from widelab_core import layers as L

    if hidden < 1 or depth < 1:
        raise ValueError(f"hidden and depth must be >= 1, got {hidden}, {depth}")
    body = []
    for _ in range(depth):
        body += [
            ConcreteDropout(init_p),
            L.Dense(hidden, b_std=1.0, parameterization="standard"),
            L.Relu(),
        ]
    body += [ConcreteDropout(init_p), L.Dense(2, b_std=1.0, parameterization="standard")]
    return L.serial(*body)


def concrete_dropout_study(
    sizes: Sequence[int] = (10, 100, 1000, 10000),
    *,
    key: jax.Array,
    hidden: int = 64,
    depth: int = 3,
    steps: int = 2000,
    batch_size: int = 128,
    lengthscale: float = 1e-2,
    noise: float = 1.0,
    lr: float = 1e-2,
) -> DropoutStudy:
    """Fit the heteroscedastic model on ``y = 2x + 8 + noise`` for several ``N``.

    Gal, Hron, Kendall (2017), Section 5.1 (synthetic study): the learned dropout
    probabilities fall as the data grow (epistemic uncertainty shrinks), while the
    first layer's ``p`` (one input unit, so a small entropy term) stays small.

    Args:
        sizes: dataset sizes (each >= 2).
        key: a ``jax.random`` key.
        hidden: hidden width.
        depth: hidden layers.
        steps: Adam steps per size.
        batch_size: minibatch size (drawn with replacement from the ``N`` points; all
            sizes train in one vmapped, jitted computation).
        lengthscale: prior lengthscale ``l``.
        noise: true noise std.
        lr: Adam learning rate.

    Returns:
        A :class:`DropoutStudy`.

    Raises:
        ValueError: sizes below 2 or non-positive settings.
    """
    import optax

    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 2:
        raise ValueError(f"sizes must be non-empty and >= 2, got {sizes}")
    if steps < 1 or batch_size < 1 or noise <= 0 or lr <= 0:
        raise ValueError("steps, batch_size, noise and lr must be positive")
    net = regression_network(hidden, depth)
    n_max = max(sizes)
    opt = optax.adam(lr)

    def fit(n, k):
        # one compilation for every size: data padded to n_max, minibatches drawn
        # with replacement from the first n points, n traced
        k_data, k_noise, k_init, k_train = jax.random.split(k, 4)
        x = jax.random.normal(k_data, (n_max, 1))
        y = 2.0 * x[:, 0] + 8.0 + noise * jax.random.normal(k_noise, (n_max,))
        _, params = net.init(k_init, (-1, 1))

        def loss_fn(params, xb, yb, kd):
            out = net.apply(params, xb, key=kd)
            reg = _regulariser(net, params, n, lengthscale, 1.0)
            return heteroscedastic_nll(out, yb) + reg

        def step(carry, kk):
            params, st = carry
            k_b, k_d = jax.random.split(kk)
            idx = jax.random.randint(k_b, (batch_size,), 0, n)
            g = jax.grad(loss_fn)(params, x[idx], y[idx], k_d)
            upd, st = opt.update(g, st, params)
            return (optax.apply_updates(params, upd), st), None

        (params, _), _ = jax.lax.scan(
            step, (params, opt.init(params)), jax.random.split(k_train, steps)
        )
        probs = jnp.stack(
            [
                dropout_probability(pp)
                for lay, pp in _leaves(net, params)
                if isinstance(lay, ConcreteDropout)
            ]
        )
        # noise head at x = 0 with the mask at its mean (key=None): cheap to compile
        log_var = net.apply(params, jnp.zeros((1, 1)))[0, 1]
        return probs, jnp.exp(0.5 * log_var)

    probs, noise_std = jax.jit(jax.vmap(fit))(
        jnp.asarray(sizes, jnp.int32), jax.random.split(key, len(sizes))
    )
    return DropoutStudy(np.asarray(sizes), np.asarray(probs), np.asarray(noise_std))
