"""The headline study: kernel regression on scikit-learn's digits vs trained finite nets,
and the finite-width empirical NTK converging to the analytic one."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core import layers as L

from .analytic import kernel_fn
from .empirical import empirical_ntk
from .inference import gp_inference


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Sizes of the digits study (``quick`` keeps it to ~20 s on 2 CPU cores)."""

    n_train: int = 300
    n_test: int = 300
    width: int = 256
    channels: int = 16
    train_steps: int = 200
    widths: tuple[int, ...] = (16, 64, 256, 1024)
    ntk_samples: int = 3
    ntk_points: int = 8
    seed: int = 0

    @staticmethod
    def quick(seed: int = 0) -> StudyConfig:
        """The report's quick mode."""
        return StudyConfig(seed=seed)

    @staticmethod
    def full(seed: int = 0) -> StudyConfig:
        """Bigger training set, wider nets, more widths."""
        return StudyConfig(
            n_train=1000,
            n_test=797,
            width=1024,
            channels=64,
            train_steps=1000,
            widths=(16, 64, 256, 1024, 4096),
            ntk_samples=5,
            seed=seed,
        )


def load_digits(n_train: int, n_test: int, seed: int = 0):
    """Digits (8x8x1, scaled to unit variance per pixel overall) and one-hot targets.

    Returns:
        ``(x_train, y_train, x_test, y_test, labels_test)``; ``y`` centred one-hot
        (``1 - 1/10`` for the class, ``-1/10`` otherwise).
    """
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = data.images.astype(np.float32)
    x = (x - x.mean()) / x.std()
    labels = data.target
    if n_train + n_test > len(labels):
        raise ValueError(
            f"digits has {len(labels)} images; n_train + n_test = {n_train + n_test} is too many"
        )
    perm = np.random.default_rng(seed).permutation(len(labels))
    tr, te = perm[:n_train], perm[n_train : n_train + n_test]
    y = np.eye(10, dtype=np.float32)[labels] - 0.1
    x = x[..., None]
    return x[tr], y[tr], x[te], y[te], labels[te]


def networks(width: int, channels: int):
    """The fully connected and convolutional networks of the study (NTK parameterization)."""
    fc = L.serial(
        L.Flatten(),
        L.Dense(width, W_std=1.5, b_std=0.05),
        L.Relu(),
        L.Dense(width, W_std=1.5, b_std=0.05),
        L.Relu(),
        L.Dense(10, W_std=1.5, b_std=0.05),
    )
    cnn = L.serial(
        L.Conv(channels, (3, 3), padding="SAME", W_std=1.5, b_std=0.05),
        L.Relu(),
        L.Conv(channels, (3, 3), padding="SAME", W_std=1.5, b_std=0.05),
        L.Relu(),
        L.Flatten(),
        L.Dense(10, W_std=1.5, b_std=0.05),
    )
    return {"FC": fc, "CNN": cnn}


def _accuracy(pred, labels) -> float:
    return float(np.mean(np.argmax(np.asarray(pred), axis=1) == labels))


def kernel_accuracies(net, x_tr, y_tr, x_te, labels_te, diag_reg: float = 1e-4):
    """Test accuracy of NNGP (Bayesian posterior mean) and NTK (t = inf gradient flow)."""
    kf = kernel_fn(net)
    k_tt = kf(x_tr, None, get=("nngp", "ntk"))
    k_st = kf(x_te, x_tr, get=("nngp", "ntk"))
    # gp_inference: the NNGP posterior and the t = inf NTK ensemble from one call.
    means = gp_inference(k_tt, y_tr, diag_reg=diag_reg)(("nngp", "ntk"), k_st)
    nngp_mean, ntk_mean = means.nngp, means.ntk
    return _accuracy(nngp_mean, labels_te), _accuracy(ntk_mean, labels_te)


def train_finite(
    net, x_tr, y_tr, x_te, labels_te, steps: int, seed: int, learning_rate: float = 1e-2
) -> float:
    """Train the finite network with optax (Adam, MSE on centred one-hot); test accuracy."""
    import optax

    _, params = net.init(jax.random.key(seed), x_tr.shape)
    opt = optax.adam(learning_rate)
    state = opt.init(params)
    xt, yt = jnp.asarray(x_tr), jnp.asarray(y_tr)

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((net.apply(p, xt) - yt) ** 2, axis=1))

    @jax.jit
    def step(p, s):
        g = jax.grad(loss)(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s

    for _ in range(steps):
        params, state = step(params, state)
    return _accuracy(net.apply(params, jnp.asarray(x_te)), labels_te)


def ntk_convergence(net_of_width: Callable[[int], L.Layer], x, widths, n_samples: int, seed: int):
    """Relative Frobenius distance of empirical NTKs to the analytic NTK, per width.

    Returns:
        ``(widths, mean_error, std_error_of_mean)`` over ``n_samples`` initialisations.
    """
    analytic = np.asarray(kernel_fn(net_of_width(widths[0]))(x, None, get="ntk"))
    means, ses = [], []
    for w in widths:
        net = net_of_width(w)
        f = jax.jit(lambda p, net=net: empirical_ntk(net.apply, p, x, None))
        errs = []
        width_key = jax.random.fold_in(jax.random.key(seed), w)
        for i in range(n_samples):
            _, params = net.init(jax.random.fold_in(width_key, i), x.shape)
            e = np.asarray(f(params))
            errs.append(np.linalg.norm(e - analytic) / np.linalg.norm(analytic))
        errs = np.asarray(errs)
        means.append(errs.mean())
        ses.append(errs.std(ddof=1) / np.sqrt(len(errs)) if len(errs) > 1 else 0.0)
    return np.asarray(widths), np.asarray(means), np.asarray(ses)


def run_study(cfg: StudyConfig, progress: Callable | None = None) -> dict:
    """Run the whole study; returns tables, the convergence curve and timings."""
    bar = progress or (lambda it, **kw: it)
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te, labels = load_digits(cfg.n_train, cfg.n_test, cfg.seed)
    rows = []
    for name, net in bar(list(networks(cfg.width, cfg.channels).items()), desc="digits"):
        acc_nngp, acc_ntk = kernel_accuracies(net, x_tr, y_tr, x_te, labels)
        acc_finite = train_finite(net, x_tr, y_tr, x_te, labels, cfg.train_steps, cfg.seed)
        rows.append((name, acc_nngp, acc_ntk, acc_finite))
    x_small = jnp.asarray(x_tr[: cfg.ntk_points].reshape(cfg.ntk_points, -1))

    def mlp(w):
        return L.serial(
            L.Dense(w, W_std=1.5, b_std=0.05), L.Relu(), L.Dense(w, W_std=1.5), L.Relu(), L.Dense(1)
        )

    widths, means, ses = ntk_convergence(mlp, x_small, cfg.widths, cfg.ntk_samples, cfg.seed)
    return {
        "rows": rows,
        "widths": widths,
        "ntk_error": means,
        "ntk_error_se": ses,
        "seconds": time.perf_counter() - t0,
        "config": cfg,
    }


def convergence_figure(result: dict):
    """Log-log plot of the empirical-vs-analytic NTK distance against width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w, m, se = result["widths"], result["ntk_error"], result["ntk_error_se"]
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.errorbar(w, m, yerr=se, marker="o", label="empirical NTK (mean over draws)")
    ax.plot(w, m[0] * np.sqrt(w[0] / w), "k--", lw=1, label=r"$\propto 1/\sqrt{\mathrm{width}}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hidden width")
    ax.set_ylabel(r"$\|\hat\Theta - \Theta\|_F / \|\Theta\|_F$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
