"""``predict`` programs written against Neural Tangents 0.6.5's public API.

Each function takes the library's modules (``nt``, ``stax``, ``predict``) and returns a
dict of arrays. ``benchmarks/nt_predict_reference.py`` runs them with Neural Tangents in
its own venv and saves ``tests/data/nt_predict.npz``; ``test_nt_predict.py`` runs them
with ``widelab_kernels.nt`` and compares. They cover the NTK-GP posterior, kernels in NT's
untraced layout ``(n1, n2, k, k)`` (``trace_axes=()``) and targets with a spatial axis
(``trace_axes`` of one axis among several).
"""

from __future__ import annotations

import collections

import jax.numpy as jnp
import numpy as np

Pair = collections.namedtuple("Pair", "nngp ntk")


def _data(seed: int, n: int, m: int, d: int = 4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((m, d))


def _psd(seed: int, k: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((k, k))
    return a @ a.T / k + 0.5 * np.eye(k)


def _kernels(stax, x):
    _, _, kernel_fn = stax.serial(
        stax.Dense(32, W_std=1.3, b_std=0.2), stax.Relu(), stax.Dense(1, W_std=1.1, b_std=0.1)
    )
    k = kernel_fn(x, None, ("nngp", "ntk"))
    return np.asarray(k.nngp), np.asarray(k.ntk)


def ntkgp(nt, stax, predict) -> dict:
    """NNGP, NTK and NTK-GP posteriors of a ReLU network's kernels."""
    x_train, x_test = _data(0, 6, 3)
    y_train = np.random.default_rng(1).standard_normal((6, 2))
    _, _, kernel_fn = stax.serial(
        stax.Dense(32, W_std=1.3, b_std=0.2), stax.Relu(), stax.Dense(1, W_std=1.1, b_std=0.1)
    )
    k_dd = kernel_fn(x_train, None, ("nngp", "ntk"))
    k_td = kernel_fn(x_test, x_train, ("nngp", "ntk"))
    k_tt = kernel_fn(x_test, None, ("nngp", "ntk"))
    gp = predict.gp_inference(k_dd, y_train, diag_reg=1e-3)
    res = gp(("nngp", "ntk", "ntkgp"), k_td, k_tt)
    out = {}
    for g in ("nngp", "ntk", "ntkgp"):
        out[f"{g}_mean"] = getattr(res, g).mean
        out[f"{g}_cov"] = getattr(res, g).covariance
    out["ntkgp_plain"] = gp("ntkgp", k_td.ntk)
    train = gp("ntkgp", None, True)
    out["ntkgp_train_mean"], out["ntkgp_train_cov"] = train.mean, train.covariance
    plain = predict.gp_inference(k_dd.ntk, y_train, diag_reg=1e-2, diag_reg_absolute_scale=True)
    g = plain("ntkgp", k_td.ntk, k_tt.ntk)
    out["ntkgp_abs_mean"], out["ntkgp_abs_cov"] = g.mean, g.covariance
    return out


def untraced(nt, stax, predict) -> dict:
    """``trace_axes=()``: kernels ``(n1, n2, k, k)`` with a non-identity output factor."""
    n, m, k = 5, 3, 3
    x_all, _ = _data(2, n + m, 1)
    nngp, ntk = _kernels(stax, x_all)
    c1, c2 = _psd(3, k), _psd(4, k)
    full = Pair(np.einsum("ij,ab->ijab", nngp, c1), np.einsum("ij,ab->ijab", ntk, c2))
    tr, te = np.arange(n), np.arange(n, n + m)
    dd = Pair(*(f[np.ix_(tr, tr)] for f in full))
    td = Pair(*(f[np.ix_(te, tr)] for f in full))
    tt = Pair(*(f[np.ix_(te, te)] for f in full))
    rng = np.random.default_rng(5)
    y = rng.standard_normal((n, k))
    fx_train_0, fx_test_0 = 0.1 * rng.standard_normal((n, k)), 0.1 * rng.standard_normal((m, k))
    out = {}
    gp = predict.gp_inference(dd, y, diag_reg=1e-3, trace_axes=())
    res = gp(("nngp", "ntk", "ntkgp"), td, tt)
    for g in ("nngp", "ntk", "ntkgp"):
        out[f"gp_{g}_mean"] = getattr(res, g).mean
        out[f"gp_{g}_cov"] = getattr(res, g).covariance
    mse = predict.gradient_descent_mse(dd.ntk, y, 0.5, 1e-2, trace_axes=())
    out["mse_train"], out["mse_test"] = mse(np.array([0.5, 4.0]), fx_train_0, fx_test_0, td.ntk)
    out["mse_inf"] = mse(None, fx_train_0, fx_test_0, td.ntk)[1]
    out["mse_test_only"] = mse(2.0, None, fx_test_0, td.ntk)
    out["mse_train_only"] = mse(2.0, fx_train_0, None, td.ntk)

    def loss(fx, y_):
        return jnp.mean(jnp.logaddexp(0.0, -fx * y_))

    gd = predict.gradient_descent(loss, dd.ntk, y, learning_rate=2.0, trace_axes=())
    out["gd_train"], out["gd_test"] = gd(1.5, fx_train_0, fx_test_0, td.ntk)

    def kernel_fn(x1, x2, get, **kwargs):
        i = np.asarray(x1, int)
        j = i if x2 is None else np.asarray(x2, int)
        ks = Pair(*(f[np.ix_(i, j)] for f in full))
        return getattr(ks, get) if isinstance(get, str) else Pair(*(getattr(ks, g) for g in get))

    ens = predict.gradient_descent_mse_ensemble(
        kernel_fn, tr.astype(float), y, learning_rate=0.7, diag_reg=1e-3, trace_axes=()
    )
    r = ens(np.array([1.0, 10.0]), te.astype(float), ("nngp", "ntk"), compute_cov=True)
    for g in ("nngp", "ntk"):
        out[f"ens_{g}_mean"] = getattr(r, g).mean
        out[f"ens_{g}_cov"] = getattr(r, g).covariance
    r = ens(None, te.astype(float), "ntk", compute_cov=True)
    out["ens_inf_mean"], out["ens_inf_cov"] = r.mean, r.covariance
    r = ens(3.0, None, "nngp", compute_cov=True)
    out["ens_train_mean"], out["ens_train_cov"] = r.mean, r.covariance
    r = ens(3.0, None, "ntk", compute_cov=True)
    out["ens_train_ntk_mean"], out["ens_train_ntk_cov"] = r.mean, r.covariance
    return out


def spatial(nt, stax, predict) -> dict:
    """Targets ``(n, h, k)`` with one traced axis: the last, or the middle one."""
    n, m, h, k = 4, 2, 3, 2
    x_all, _ = _data(6, n + m, 1)
    nngp, ntk = _kernels(stax, x_all)
    tr, te = np.arange(n), np.arange(n, n + m)
    rng = np.random.default_rng(7)
    y = rng.standard_normal((n, h, k))
    out = {}
    for name, axes, c in (("last", (-1,), _psd(8, h)), ("middle", (1,), _psd(9, k))):
        kn = np.einsum("ij,ab->ijab", nngp, c)
        kt = np.einsum("ij,ab->ijab", ntk, c + 0.3 * np.eye(len(c)))
        dd = Pair(kn[np.ix_(tr, tr)], kt[np.ix_(tr, tr)])
        td = Pair(kn[np.ix_(te, tr)], kt[np.ix_(te, tr)])
        tt = Pair(kn[np.ix_(te, te)], kt[np.ix_(te, te)])
        gp = predict.gp_inference(dd, y, diag_reg=1e-3, trace_axes=axes)
        res = gp(("nngp", "ntk", "ntkgp"), td, tt)
        for g in ("nngp", "ntk", "ntkgp"):
            out[f"{name}_gp_{g}_mean"] = getattr(res, g).mean
            out[f"{name}_gp_{g}_cov"] = getattr(res, g).covariance
        mse = predict.gradient_descent_mse(dd.ntk, y, 0.9, trace_axes=axes)
        fx_test_0 = 0.1 * rng.standard_normal((m, h, k))
        tr_t, te_t = mse(np.array([[1.0, 2.0], [5.0, 30.0]]), 0.05, fx_test_0, td.ntk)
        out[f"{name}_mse_train"], out[f"{name}_mse_test"] = tr_t, te_t
    return out


PROGRAMS = {"ntkgp": ntkgp, "untraced": untraced, "spatial": spatial}
