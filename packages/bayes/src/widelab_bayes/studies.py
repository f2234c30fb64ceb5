"""Studies shared by the report, the ``widelab bayes`` command and the benchmark.

* :func:`ess_vs_width`: function-space ESS per gradient and per second of repriorised
  generalised HMC (joint, or collapsed with the readout drawn exactly) against sampling
  the plain parameterization (GHMC or blackjax NUTS) on one-hidden-layer ReLU
  regression, across widths (Hron et al. 2022, Fig. 3).
* :func:`mmd_vs_width`: MMD^2 between prior function samples of finite ReLU networks
  and their NNGP limit, across widths and depths (Matthews et al. 2018, Fig. 2).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from widelab_core import layers as L
from widelab_core.validate import require_float, require_int

from .diagnostics import function_space_ess, random_projections
from .gaussian_reference import sample_elliptical_slice, sample_pcn
from .likelihoods import Categorical
from .mmd import gp_samples, mmd2_jackknife_se, mmd2_to_gp, network_prior_samples, relu_nngp
from .model import BNN
from .networks import NETWORKS, fcn
from .repriorise import Repriorised
from .samplers import SampleResult, sample_blackjax, sample_ghmc

W_STD, B_STD = 1.5, 0.1
METHODS = (
    "repriorised-ghmc",
    "collapsed-ghmc",
    "collapsed-nuts",
    "plain-ghmc",
    "plain-nuts",
    "collapsed-pcn",
    "collapsed-elliptical",
    "repriorised-pcn",
    "repriorised-elliptical",
)
#: methods whose sampler needs no gradient (their cost is counted in density evaluations)
GRADIENT_FREE = ("pcn", "elliptical")


def toy_regression(n: int, seed: int = 0, noise_std: float = 0.1):
    """1-D regression data ``y = sin(3x) + x/2 + noise`` on ``[-2, 2]`` and 25 test inputs."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, size=(n, 1)), axis=0)
    y = np.sin(3 * x) + 0.5 * x + noise_std * rng.normal(size=(n, 1))
    x_test = np.linspace(-2.5, 2.5, 25)[:, None]
    return x, y, x_test


def mlp(
    width: int, depth: int = 1, out_dim: int = 1, W_std: float = W_STD, b_std: float = B_STD
) -> L.Layer:
    """``depth`` hidden ReLU layers of ``width`` units and a Dense readout (NTK param);
    :func:`widelab_bayes.networks.fcn`."""
    return fcn(width, depth, out_dim, W_std=W_std, b_std=b_std)


@dataclasses.dataclass
class Run:
    """One sampler run on one posterior, summarised in function space."""

    method: str
    width: int
    ess: float
    ess_per_gradient: float
    ess_per_second: float
    result: SampleResult

    def row(self) -> list:
        """Table row: method, width, ESS, ESS/grad, ESS/s, acceptance, divergences, ..."""
        r = self.result
        fs = function_space_ess(r.projections)
        return [
            self.method,
            self.width,
            round(self.ess, 1),
            self.ess_per_gradient,
            self.ess_per_second,
            round(r.acceptance_rate, 3),
            r.divergences,
            r.nonfinite,
            round(fs["max_rhat"], 3),
            round(r.seconds, 2),
        ]


HEADER = [
    "method",
    "width",
    "ESS",
    "ESS/grad",
    "ESS/s",
    "accept",
    "diverg.",
    "non-finite",
    "max R-hat",
    "seconds",
]


def _summarise(method, width, res: SampleResult) -> Run:
    """ESS per gradient, or per density evaluation for the gradient-free samplers."""
    ess = function_space_ess(res.projections)["min_bulk"]
    chains = res.projections.shape[0]
    per_chain = res.gradients_per_chain or (res.density_evaluations_per_chain or 0.0)
    return Run(method, width, ess, ess / (chains * per_chain), ess / res.seconds, res)


def sampling_coordinates(method: str, model: BNN) -> tuple[Callable, Callable, Callable]:
    """What a method samples: ``(log_density, init, predict)`` on its coordinates.

    ``"plain-*"``: the raw parameters. ``"repriorised-*"``: ``(theta, phi)`` of
    :class:`~widelab_bayes.repriorise.Repriorised`. ``"collapsed-*"``: the hidden
    parameters alone, under
    :meth:`~widelab_bayes.repriorise.Repriorised.log_hidden_density`; their
    ``predict`` draws ``phi ~ N(0, I)`` (its exact posterior) from its key.

    Args:
        method: one of :data:`METHODS`.
        model: the Bayesian network.

    Returns:
        ``log_density(params)``, ``init(key) -> params`` (a prior draw) and
        ``predict(params, x, key) -> (n, k)`` outputs (the key is used by the
        collapsed methods only).

    Raises:
        ValueError: unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if method.startswith("plain"):
        return model.log_density, model.init, lambda params, x, key: model.apply(params, x)
    rep = Repriorised(model)
    if method.startswith("repriorised"):
        return rep.log_density, rep.init, lambda params, x, key: rep.predict(params, x)

    def predict(hidden, x, key):
        return rep.predict({"hidden": hidden, "phi": rep.draw_phi(key)}, x)

    return rep.log_hidden_density, lambda key: rep.init(key)["hidden"], predict


@dataclasses.dataclass(frozen=True)
class _Coordinates:
    """A method's flat log density and function-space projection with the data as an
    argument (``{"x", "y", "x_test", "P"}``). Equal methods, networks and likelihoods give
    equal (and equally hashing) functions, so the samplers reuse one compiled run for
    every call with the same shapes, whatever the data values."""

    method: str
    net: L.Layer
    likelihood: Any
    model: BNN = dataclasses.field(compare=False, repr=False)
    unravel: Callable = dataclasses.field(compare=False, repr=False)

    def _coordinates(self, data):
        model = copy.copy(self.model)
        model.x, model.y = data["x"], data["y"]
        return sampling_coordinates(self.method, model)

    def __call__(self, v, data):
        """The log density of the flat position ``v``."""
        return self._coordinates(data)[0](self.unravel(v))


@dataclasses.dataclass(frozen=True)
class _Projection:
    """``data["P"]``-projections of the test outputs of a :class:`_Coordinates` position
    (a value, unlike a bound method, which compares by the identity of its object)."""

    coordinates: _Coordinates

    def __call__(self, v, key, data):
        c = self.coordinates
        predict = c._coordinates(data)[2]
        return jnp.reshape(predict(c.unravel(v), data["x_test"], key), (-1,)) @ data["P"]


def sample_bnn(
    key: jax.Array,
    width: int,
    method: str,
    *,
    n_data: int = 100,
    noise_std: float = 0.1,
    chains: int = 4,
    num_warmup: int = 300,
    num_samples: int = 500,
    num_projections: int = 8,
    persistence: float = 0.95,
    thin: int = 1,
    seed: int = 0,
    depth: int = 1,
    data: tuple | None = None,
    u_drift: float | None = 0.02,
    target_accept: float = 0.9,
    adapt_scale: bool = False,
    w_std: float = W_STD,
    b_std: float = B_STD,
    network: str = "fcn",
    likelihood: str = "gaussian",
) -> Run:
    """Sample one toy BNN posterior with one method and summarise in function space.

    Args:
        key: a ``jax.random`` key.
        width: hidden width of the one-hidden-layer ReLU network.
        method: one of :data:`METHODS`. ``"repriorised-ghmc"`` is the sampler of Hron
            et al. 2022: GHMC on the repriorised ``(theta, phi)``. ``"collapsed-ghmc"``
            runs the same GHMC on the hidden parameters alone, with the readout
            integrated out (:meth:`~widelab_bayes.repriorise.Repriorised.log_hidden_density`),
            and draws ``phi ~ N(0, I)`` (its exact posterior) afresh for every stored
            draw. ``"collapsed-nuts"`` does the same with blackjax NUTS. ``"plain-ghmc"``
            and ``"plain-nuts"`` sample the raw parameters.
        n_data: number of regression points.
        noise_std: likelihood noise.
        chains: chains run together with vmap.
        num_warmup: warm-up (adaptation) transitions.
        num_samples: stored transitions per chain.
        num_projections: fixed random projections of the 25 test predictions.
        persistence: GHMC momentum persistence.
        thin: GHMC transitions per stored draw.
        seed: data seed.
        depth: number of hidden ReLU layers.
        data: optional ``(x, y)`` or ``(x, y, x_test)`` arrays to use instead of the toy
            data; ``y`` may have several columns (one output each; class labels for the
            categorical likelihood). Without ``x_test`` the test inputs are 25 points
            spanning the range of the first input column.
        u_drift: GHMC only: drift of Neal's non-reversible uniform (``None``: the
            standard accept/reject rule); see :func:`~widelab_bayes.ghmc_step`.
        target_accept: GHMC only: target acceptance of the step-size adaptation.
        adapt_scale: GHMC only: per-chain diagonal mass matrix from the warm-up.
        w_std, b_std: weight and bias scales of every Dense layer.
        network: ``"fcn"`` (:func:`~widelab_bayes.networks.fcn`) or ``"resnet"``
            (:func:`~widelab_bayes.networks.resnet`, ``depth`` residual blocks).
        likelihood: ``"gaussian"`` (noise ``noise_std``) or ``"categorical"`` (softmax;
            plain methods only, ``y`` holds class labels).

    Returns:
        A :class:`Run`. Function-space ESS is measured on ``num_projections`` fixed
        random projections of all test predictions (every test point and output).
        The pCN and elliptical-slice methods count density evaluations in place of
        gradients.

    Raises:
        ValueError: unknown method, network or likelihood; a categorical likelihood
            with a repriorised or collapsed method; a width, depth, chain, sample,
            projection or thin count below 1, a negative warm-up, or a noise scale that is
            not positive.
    """
    for name, value in [
        ("width", width),
        ("depth", depth),
        ("chains", chains),
        ("n_data", n_data),
        ("num_samples", num_samples),
        ("num_projections", num_projections),
        ("thin", thin),
    ]:
        require_int(value, name, min=1)
    require_int(num_warmup, "num_warmup", min=0)
    require_float(noise_std, "noise_std", min=0, min_open=True)
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {tuple(NETWORKS)}, got {network!r}")
    if likelihood not in ("gaussian", "categorical"):
        raise ValueError(f"likelihood must be 'gaussian' or 'categorical', got {likelihood!r}")
    if data is None:
        x, y, x_test = toy_regression(n_data, seed, noise_std)
    else:
        x, y = (np.asarray(a, dtype=np.float64) for a in data[:2])
        if len(data) > 2:
            x_test = np.asarray(data[2], dtype=np.float64)
        else:
            x_test = np.repeat(x.mean(0, keepdims=True), 25, axis=0)
            x_test[:, 0] = np.linspace(x[:, 0].min(), x[:, 0].max(), 25)
    if likelihood == "categorical":
        out_dim = int(y.max()) + 1 if y.ndim == 1 else y.shape[1]
        lik = dict(likelihood=Categorical())
    else:
        out_dim = 1 if y.ndim == 1 else y.shape[1]
        lik = dict(noise_std=noise_std)
    net = NETWORKS[network](width, depth, out_dim, W_std=w_std, b_std=b_std)
    model = BNN(net, x, y, **lik)
    dtype = model.x.dtype
    n_out = x_test.shape[0] * model.out_dim
    P = jnp.asarray(random_projections(seed + 1, n_out, num_projections), dtype)
    xt = jnp.asarray(x_test, dtype)
    k_init, k_run = jax.random.split(key)
    init_keys = jax.random.split(k_init, chains)
    _, init_fn, _ = sampling_coordinates(method, model)
    _, unravel = ravel_pytree(init_fn(init_keys[0]))
    init = jnp.stack([ravel_pytree(init_fn(k))[0] for k in init_keys])
    target = _Coordinates(method, net, model.likelihood, model, unravel)
    run = dict(
        num_warmup=num_warmup,
        num_samples=num_samples,
        project=_Projection(target),
        project_key=True,
        data={"x": model.x, "y": model.y, "x_test": xt, "P": P},
    )
    ld = target
    if method.endswith("nuts"):
        res = sample_blackjax(k_run, ld, init, **run)
    elif method.endswith("pcn"):
        res = sample_pcn(k_run, ld, init, **run, thin=thin)
    elif method.endswith("elliptical"):
        res = sample_elliptical_slice(k_run, ld, init, **run, thin=thin)
    else:
        res = sample_ghmc(
            k_run,
            ld,
            init,
            **run,
            persistence=persistence,
            thin=thin,
            u_drift=u_drift,
            target_accept=target_accept,
            adapt_scale=adapt_scale,
        )
    return _summarise(method, width, res)


def ess_vs_width(
    key: jax.Array,
    widths: Sequence[int],
    methods: Sequence[str] = ("repriorised-ghmc", "plain-ghmc"),
    progress=None,
    **kwargs,
) -> list[Run]:
    """:func:`sample_bnn` for every method and width (same data, same projections).

    Args:
        key: a ``jax.random`` key (each run gets its own sub-key).
        widths: hidden widths.
        methods: methods of :func:`sample_bnn`.
        progress: optional wrapper for progress bars (e.g. ``ctx.bar``).
        **kwargs: passed to :func:`sample_bnn`.

    Returns:
        One :class:`Run` per (method, width).
    """
    jobs = [(m, w) for w in widths for m in methods]
    keys = jax.random.split(key, len(jobs))
    it = zip(jobs, keys)
    if progress is not None:
        it = progress(list(it), desc="bayes: ESS vs width")
    return [sample_bnn(k, w, m, **kwargs) for (m, w), k in it]


def mmd_vs_width(
    key: jax.Array,
    widths: Sequence[int],
    depths: Sequence[int] = (1, 2, 3),
    *,
    n_inputs: int = 4,
    num_samples: int = 200,
    progress=None,
) -> list[tuple[int, int, float, float]]:
    """MMD^2 between prior draws of finite ReLU MLPs and their NNGP (Matthews et al. 2018).

    Args:
        key: a ``jax.random`` key.
        widths: hidden widths.
        depths: numbers of hidden layers.
        n_inputs: number of inputs the functions are evaluated at.
        num_samples: network draws (and as many GP draws) per estimate.
        progress: optional progress-bar wrapper.

    Returns:
        ``(depth, width, mmd2, se)`` tuples, ``se`` the jackknife standard error of
        ``mmd2`` (:func:`~widelab_bayes.mmd.mmd2_jackknife_se`); per depth the RBF
        lengthscale is the median heuristic of the first width's estimate, then kept fixed
        across widths.
    """
    x = jnp.asarray(np.random.default_rng(0).normal(size=(n_inputs, 2)), jnp.zeros(()).dtype)
    jobs = [(d, w) for d in depths for w in widths]
    keys = jax.random.split(key, len(jobs))
    it = list(zip(jobs, keys))
    if progress is not None:
        it = progress(it, desc="bayes: MMD vs width")
    out = []
    lengthscales = {}
    for (d, w), k in it:
        k1, k2 = jax.random.split(k)
        cov = relu_nngp(x, d, W_STD, B_STD)
        f = network_prior_samples(k1, mlp(w, d), x, num_samples)
        mmd2, ls = mmd2_to_gp(k2, f, cov, lengthscale=lengthscales.get(d))
        lengthscales.setdefault(d, ls)
        se = mmd2_jackknife_se(f, gp_samples(k2, cov, f.shape[0]), ls)  # mmd2_to_gp's draws
        out.append((d, w, mmd2, se))
    return out
