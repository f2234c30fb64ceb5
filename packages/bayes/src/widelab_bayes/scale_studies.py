"""Studies on real inputs: sampling cost against width, posterior-to-prior KL, MMD to the NNGP.

* :func:`image_ess_vs_width`: function-space ESS per gradient and per second of
  collapsed and joint repriorised sampling against plain sampling (GHMC, NUTS) on a
  subset of a real image data set with one output per class (Hron et al. 2022, Fig. 3).
* :func:`kl_vs_width`: ``KL(prior || repriorised posterior)`` of the hidden weights
  against width (Hron et al. 2022, Sec. 4: it vanishes like ``1 / width``).
* :func:`image_mmd_vs_width`: MMD^2 between prior draws of ReLU networks and their NNGP
  on real inputs, against width and depth, with standard errors over repeats
  (Matthews et al. 2018, Sec. 5).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .data import load_image_subset, one_hot_targets
from .mmd import mmd2_to_gp, network_prior_samples, relu_nngp
from .model import BNN
from .networks import NETWORKS, fcn
from .repriorise import Repriorised
from .studies import B_STD, W_STD, Run, sample_bnn


def image_ess_vs_width(
    key: jax.Array,
    widths: Sequence[int],
    methods: Sequence[str] = ("collapsed-ghmc", "repriorised-ghmc", "plain-nuts"),
    networks: Sequence[str] = ("fcn",),
    *,
    data: str = "digits",
    path=None,
    n_data: int = 64,
    n_test: int = 16,
    depth: int = 1,
    noise_std: float = 0.3,
    preprocess: str = "unit-norm",
    progress=None,
    **kwargs,
) -> list[tuple[str, Run]]:
    """ESS per gradient and per second against width on real images, one output per class.

    The targets are centred one-hot rows, the likelihood Gaussian (Lee et al. 2018);
    ESS is measured on fixed random projections of the ``n_test`` x ``k`` test outputs.

    Args:
        key: a ``jax.random`` key (every run gets its own sub-key).
        widths: hidden widths.
        methods: methods of :func:`~widelab_bayes.studies.sample_bnn`.
        networks: ``"fcn"`` and/or ``"resnet"``.
        data, path, preprocess: see :func:`~widelab_bayes.data.load_image_subset`.
        n_data, n_test: training and test points.
        depth: hidden layers (FCN) or residual blocks (ResNet).
        noise_std: likelihood noise.
        progress: optional progress-bar wrapper.
        **kwargs: passed to :func:`~widelab_bayes.studies.sample_bnn` (``chains``,
            ``num_warmup``, ``num_samples``, ...).

    Returns:
        ``(network, run)`` pairs for every network, width and method.
    """
    d = load_image_subset(data, n_data, n_test=n_test, preprocess=preprocess, path=path)
    triple = (d.x, one_hot_targets(d.labels, d.num_classes), d.x_test)
    jobs = [(net, w, m) for net in networks for w in widths for m in methods]
    keys = jax.random.split(key, len(jobs))
    it = list(zip(jobs, keys))
    if progress is not None:
        it = progress(it, desc="bayes: ESS vs width on images")
    return [
        (
            net,
            sample_bnn(
                k, w, m, data=triple, network=net, depth=depth, noise_std=noise_std, **kwargs
            ),
        )
        for (net, w, m), k in it
    ]


@dataclasses.dataclass
class KLPoint:
    """``KL(prior || posterior)`` of the hidden weights at one width, with its s.e."""

    width: int
    kl: float
    se: float


def kl_vs_width(
    key: jax.Array,
    widths: Sequence[int],
    *,
    network: str = "fcn",
    depth: int = 1,
    n_data: int = 8,
    noise_std: float = 0.3,
    num_draws: int = 2000,
    num_bootstrap: int = 200,
    data: str = "digits",
    path=None,
) -> list[KLPoint]:
    """``KL(p(theta) || p(theta | y))`` of the hidden weights in repriorised coordinates.

    In repriorised coordinates ``phi`` is exactly ``N(0, I)`` under prior and posterior,
    so the KL between them is that of the hidden weights ``theta``:

        KL = log E_prior[ML(theta)] - E_prior[log ML(theta)],

    with ``ML(theta) = N(Y; 0, Phi Phi^T + sigma^2 I)`` (Hron et al. 2022, Sec. 4).
    Both expectations are estimated from the same ``num_draws`` prior draws (the
    estimator is consistent; its bias is of order ``Var[log ML] / num_draws``). As the
    width grows, ``log ML`` concentrates with variance ``O(1 / width)``, and
    ``KL ~ Var[log ML] / 2`` falls like ``1 / width``.

    Args:
        key: a ``jax.random`` key.
        widths: hidden widths.
        network: ``"fcn"`` or ``"resnet"``.
        depth: hidden layers or residual blocks.
        n_data: training points (a small problem: a digits subset, one-hot targets).
        noise_std: likelihood noise.
        num_draws: prior draws per width.
        num_bootstrap: bootstrap resamples for the standard error.
        data, path: see :func:`~widelab_bayes.data.load_image_subset`.

    Returns:
        One :class:`KLPoint` per width.
    """
    d = load_image_subset(data, n_data, n_test=0, preprocess="unit-norm", path=path)
    y = one_hot_targets(d.labels, d.num_classes)
    rng = np.random.default_rng(0)
    out = []
    for width, k in zip(widths, jax.random.split(key, len(widths))):
        net = NETWORKS[network](width, depth, d.num_classes, W_std=W_STD, b_std=B_STD)
        rep = Repriorised(BNN(net, d.x, y, noise_std=noise_std))
        keys = jax.random.split(k, num_draws)
        lml = np.asarray(
            jax.lax.map(lambda kk, r=rep: r.log_marginal_likelihood(r.init(kk)["hidden"]), keys),
            np.float64,
        )

        def kl(v):
            top = v.max()
            return top + math.log(np.mean(np.exp(v - top))) - v.mean()

        boots = [kl(lml[rng.integers(0, lml.size, lml.size)]) for _ in range(num_bootstrap)]
        out.append(KLPoint(int(width), float(kl(lml)), float(np.std(boots))))
    return out


def kl_slope(points: Sequence[KLPoint]) -> float:
    """Least-squares slope of ``log KL`` against ``log width`` (about -1 when KL ~ 1/width)."""
    w = np.log([p.width for p in points])
    v = np.log([max(p.kl, 1e-300) for p in points])
    return float(np.polyfit(w, v, 1)[0])


def image_mmd_vs_width(
    key: jax.Array,
    widths: Sequence[int],
    depths: Sequence[int] = (1, 2, 3),
    *,
    n_inputs: int = 5,
    num_samples: int = 200,
    repeats: int = 5,
    data: str = "digits",
    path=None,
    progress=None,
) -> list[tuple[int, int, float, float]]:
    """MMD^2 between ReLU-network prior draws and the NNGP on real inputs, with s.e.

    Matthews et al. 2018, Sec. 5: the unbiased MMD^2 (RBF kernel, lengthscale by the
    median heuristic at the narrowest width of each depth, then fixed) between
    ``num_samples`` draws of the network's outputs at ``n_inputs`` real images
    (unit-norm digits by default) and as many draws of the NNGP, repeated ``repeats``
    times with fresh keys; the standard error is that of the mean over repeats.

    Args:
        key: a ``jax.random`` key.
        widths: hidden widths.
        depths: numbers of hidden layers.
        n_inputs: images the functions are evaluated at.
        num_samples: network and GP draws per estimate.
        repeats: independent estimates per (depth, width) (>= 2 for a standard error).
        data, path: see :func:`~widelab_bayes.data.load_image_subset`.
        progress: optional progress-bar wrapper.

    Returns:
        ``(depth, width, mean MMD^2, standard error)`` rows.
    """
    d = load_image_subset(data, n_inputs, n_test=0, preprocess="unit-norm", path=path)
    x = jnp.asarray(d.x, jnp.zeros(()).dtype)
    jobs = [(dp, w) for dp in depths for w in widths]
    it = list(zip(jobs, jax.random.split(key, len(jobs))))
    if progress is not None:
        it = progress(it, desc="bayes: MMD vs width on images")
    out, lengthscales = [], {}
    for (dp, w), k in it:
        cov = relu_nngp(x, dp, W_STD, B_STD)
        vals = []
        for kr in jax.random.split(k, repeats):
            k1, k2 = jax.random.split(kr)
            f = network_prior_samples(k1, fcn(w, dp, W_std=W_STD, b_std=B_STD), x, num_samples)
            mmd2, ls = mmd2_to_gp(k2, f, cov, lengthscale=lengthscales.get(dp))
            lengthscales.setdefault(dp, ls)
            vals.append(float(mmd2))
        se = float(np.std(vals, ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else math.nan
        out.append((dp, w, float(np.mean(vals)), se))
    return out
