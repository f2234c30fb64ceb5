"""``predict.gradient_descent`` programs on NT 0.6.5's ``ODEState`` calling form.

Each function takes the library's modules (``nt``, ``stax``, ``predict``) and returns a
dict of arrays. ``benchmarks/nt_predict_reference.py`` runs them with Neural Tangents in
its own venv and saves ``tests/data/nt_ode_state.npz``; ``test_nt_ode_state.py`` runs them
with ``widelab_kernels.nt`` and compares. They cover momentum started from a moving state
(NT's ``qx`` variables), a state without test outputs, plain gradient flow on
cross-entropy from a state without training outputs, and the untraced kernel layout.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _psd(seed: int, n: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, n))
    return a @ a.T / n + 0.3 * np.eye(n)


def _problem(seed: int, n: int = 6, m: int = 3, k: int = 2):
    """Train-train and test-train kernels of one PSD matrix, targets, outputs, velocities."""
    full = _psd(seed, n + m)
    rng = np.random.default_rng(seed + 100)
    y = rng.standard_normal((n, k))
    f_tr, f_te = 0.3 * rng.standard_normal((n, k)), 0.3 * rng.standard_normal((m, k))
    q_tr, q_te = rng.standard_normal((n, k)), rng.standard_normal((m, k))
    return full[:n, :n], full[n:, :n], y, f_tr, f_te, q_tr, q_te


def _mse(fx, y):
    return 0.5 * jnp.mean((fx - y) ** 2)


def _fields(prefix: str, state) -> dict:
    names = ("fx_train", "fx_test", "qx_train", "qx_test")
    return {
        f"{prefix}_{n}": np.asarray(getattr(state, n))
        for n in names
        if getattr(state, n) is not None
    }


def momentum(nt, stax, predict) -> dict:
    """MSE with momentum from a moving state, at three times (one of them 0)."""
    k_dd, k_td, y, f_tr, f_te, q_tr, q_te = _problem(1)
    gd = predict.gradient_descent(_mse, k_dd, y, learning_rate=0.5, momentum=0.7)
    ts = np.array([0.0, 0.7, 3.0])
    out = _fields("moving", gd(ts, predict.ODEState(f_tr, f_te, q_tr, q_te), None, k_td))
    # Outputs at rest (qx None: zero velocities).
    out.update(_fields("rest", gd(2.0, predict.ODEState(f_tr, f_te), None, k_td)))
    # No test outputs in the state: its qx_test is not used, fx_test stays None.
    out.update(_fields("train_only", gd(1.5, predict.ODEState(f_tr, None, q_tr, q_te))))
    return out


def cross_entropy(nt, stax, predict) -> dict:
    """Plain gradient flow on softmax cross-entropy from a state with test outputs only
    (NT starts the training outputs at zero and still returns them)."""
    k_dd, k_td, _, _, f_te, _, _ = _problem(2, k=3)
    y = np.eye(3)[np.arange(6) % 3]

    def loss(fx, y_):
        return -jnp.mean(
            jnp.sum(jnp.log(jnp.exp(fx) / jnp.sum(jnp.exp(fx), -1, keepdims=True)) * y_, -1)
        )

    gd = predict.gradient_descent(loss, k_dd, y, learning_rate=2.0)
    return _fields("ce", gd(np.array([0.5, 4.0]), predict.ODEState(None, f_te), None, k_td))


def untraced(nt, stax, predict) -> dict:
    """Momentum with kernels in the untraced layout ``(n, n, k, k)`` (``trace_axes=()``)."""
    k_dd, k_td, y, f_tr, f_te, q_tr, q_te = _problem(3)
    k = y.shape[1]
    mix = np.array([[1.0, 0.3], [0.3, 0.8]])
    dd = np.einsum("ij,ab->iajb", k_dd, mix).transpose(0, 2, 1, 3)
    td = np.einsum("ij,ab->iajb", k_td, mix).transpose(0, 2, 1, 3)
    assert dd.shape == (6, 6, k, k)
    gd = predict.gradient_descent(_mse, dd, y, learning_rate=1.5, momentum=0.4, trace_axes=())
    return _fields("untraced", gd(2.5, predict.ODEState(f_tr, f_te, q_tr, q_te), None, td))


PROGRAMS = {"momentum": momentum, "cross_entropy": cross_entropy, "untraced": untraced}
