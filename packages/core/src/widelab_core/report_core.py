"""Core's report section: a finite network from the layer algebra trained with optax."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import layers as L
from .command import ReportContext, ReportSection


def load_digits_split(seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], shuffled and split.

    Returns:
        ``(x_train, y_train, x_test, y_test)`` with images of shape ``(n, 8, 8, 1)`` and
        integer labels.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[perm], y[perm]
    n_test = int(len(y) * test_fraction)
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def train_classifier(net, x, y, *, steps: int, learning_rate: float, key, batch_size: int = 128):
    """Train ``net`` with Adam on softmax cross-entropy, one jitted step per mini-batch.

    (A Python loop over a jitted step rather than one ``lax.scan``: XLA's CPU backend
    runs convolutions inside a compiled loop far more slowly than at top level.)

    Returns:
        ``(params, losses)``; ``losses[i]`` is the mini-batch loss at step ``i``.
    """
    k_init, k_data = jax.random.split(key)
    _, params = net.init(k_init, (-1,) + x.shape[1:])
    opt = optax.adam(learning_rate)
    state = opt.init(params)
    x, y = jnp.asarray(x), jnp.asarray(y)
    n = x.shape[0]
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_data)).ravel())

    def loss_fn(p, xb, yb):
        logits = net.apply(p, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(p, s, idx):
        loss, g = jax.value_and_grad(loss_fn)(p, x[idx], y[idx])
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, loss

    losses = []
    for _ in range(steps):
        idx = jnp.asarray(rng.choice(n, batch_size, replace=False))
        params, state, loss = step(params, state, idx)
        losses.append(loss)
    return params, np.asarray(jnp.stack(losses))


def accuracy(net, params, x, y) -> float:
    """Share of correctly classified examples."""
    pred = jnp.argmax(net.apply(params, jnp.asarray(x)), axis=-1)
    return float(jnp.mean(pred == jnp.asarray(y)))


def core_report(ctx: ReportContext) -> ReportSection:
    """Train an MLP (and a small CNN when ``Conv`` is available) on digits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    section = ReportSection("core: finite networks from the layer algebra")
    x_tr, y_tr, x_te, y_te = load_digits_split(ctx.seed)
    steps = 300 if ctx.quick else 2000
    nets = {
        "MLP 64-256-10": L.serial(
            L.Flatten(), L.Dense(256, W_std=2**0.5, b_std=0.05), L.Relu(), L.Dense(10)
        )
    }
    if hasattr(L, "Conv") and hasattr(L, "GlobalAvgPool"):
        nets["CNN 3x3x32 + pool"] = L.serial(
            L.Conv(32, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.05),
            L.Relu(),
            L.Conv(32, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.05),
            L.Relu(),
            L.GlobalAvgPool(),
            L.Dense(10),
        )
    section.text(
        f"Networks written once in the layer algebra, trained for {steps} Adam steps "
        f"(batch 128) on scikit-learn's bundled digits ({len(y_tr)} train / {len(y_te)} "
        "test images). The loss falling shows init/apply and autodiff working together."
    )
    fig, ax = plt.subplots(figsize=(6, 3.5))
    rows = []
    for i, (name, net) in enumerate(ctx.bar(nets.items(), desc="core", total=len(nets))):
        t0 = time.perf_counter()
        params, losses = train_classifier(
            net, x_tr, y_tr, steps=steps, learning_rate=1e-2, key=jax.random.key(ctx.seed + i)
        )
        seconds = time.perf_counter() - t0
        acc = accuracy(net, params, x_te, y_te)
        smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
        ax.plot(smooth, label=name)
        rows.append([name, float(losses[:10].mean()), float(losses[-10:].mean()), acc, seconds])
        key = name.split()[0].lower()
        section.metric(f"{key} test accuracy", acc, unit="1", better="higher")
        section.metric(
            f"{key} final loss",
            float(losses[-10:].mean()),
            summary=False,
            unit="nats",
            better="lower",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (10-step mean)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Training loss on digits")
    section.figure(fig, "Training loss of finite networks built from widelab_core.layers.")
    section.table(
        ["network", "initial loss", "final loss", "test accuracy", "seconds"],
        rows,
        "Digits classification with networks from the layer algebra.",
    )
    return section
