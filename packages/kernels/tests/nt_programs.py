"""Programs written against Neural Tangents' public API, run unchanged on both libraries.

Each function takes the library's modules (``nt``, ``stax``, ``predict``) as arguments,
so the very same code runs with ``import neural_tangents as nt`` (to make the reference
fixtures, see ``benchmarks/nt_compat_reference.py``) and with
``import widelab_kernels.nt as nt`` (in ``test_nt_programs.py``). They follow the
usage shown in NT's README and documentation (an infinite fully connected network, a
convolutional network, predictions, empirical kernels, linearisation), written anew.
Inputs come from NumPy with fixed seeds; everything runs in float64.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def data(seed: int = 0, n_train: int = 6, n_test: int = 4, dim: int = 5):
    rng = np.random.default_rng(seed)
    x_train = rng.standard_normal((n_train, dim))
    x_test = rng.standard_normal((n_test, dim))
    y_train = np.sin(x_train[:, :2])
    return x_train, y_train, x_test


def images(seed: int = 1, n1: int = 3, n2: int = 2, size: int = 4, chan: int = 2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n1, size, size, chan)), rng.standard_normal((n2, size, size, chan))


def readme_infinite_network(nt, stax, predict) -> dict:
    """The README's first example: an infinitely wide erf network, its kernels and the
    posterior of an infinite ensemble trained on MSE."""
    x_train, y_train, x_test = data()
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(512, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(512, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )
    out = {}
    out["nngp"] = kernel_fn(x_train, x_test, "nngp")
    out["ntk"] = kernel_fn(x_train, x_test, "ntk")
    both = kernel_fn(x_train, None, ("nngp", "ntk"))
    out["both_nngp"], out["both_ntk"] = both.nngp, both.ntk
    out["only_nngp"] = kernel_fn(x_train, x_test, ("nngp",)).nngp
    k = kernel_fn(x_train, x_test)
    out["kernel_nngp"], out["kernel_cov1"], out["kernel_cov2"] = k.nngp, k.cov1, k.cov2
    predict_fn = predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, diag_reg=1e-4)
    out["mean_nngp"] = predict_fn(x_test=x_test, get="nngp")
    mean, cov = predict_fn(x_test=x_test, get="ntk", compute_cov=True)
    out["mean_ntk"], out["cov_ntk"] = mean, cov
    both = predict_fn(t=jnp.array([1.0, 10.0]), x_test=x_test, get=("nngp", "ntk"))
    out["t_nngp"], out["t_ntk"] = both.nngp, both.ntk
    out["train_ntk"] = predict_fn(t=5.0, get="ntk")
    return out


def convolutional_network(nt, stax, predict) -> dict:
    """A small CNN with pooling and readout, and a fully convolutional one whose
    outputs keep their spatial axes (NT's all-pairs layout ``(n1, n2, h, h', w, w')``)."""
    x1, x2 = images()
    _, _, kernel_fn = stax.serial(
        stax.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.1),
        stax.Relu(),
        stax.AvgPool((2, 2)),
        stax.Conv(8, (2, 2), strides=(1, 1), padding="VALID", W_std=1.4, b_std=0.1),
        stax.Relu(),
        stax.Flatten(),
        stax.Dense(3, W_std=1.2),
    )
    out = {}
    k = kernel_fn(x1, x2, ("nngp", "ntk"))
    out["cnn_nngp"], out["cnn_ntk"] = k.nngp, k.ntk
    _, _, kernel_fn = stax.serial(
        stax.Conv(8, (3, 3), padding="CIRCULAR", W_std=1.3, b_std=0.2),
        stax.Erf(),
        stax.Conv(8, (2, 2), padding="SAME", W_std=1.3),
    )
    k = kernel_fn(x1, x2)
    out["fcn_nngp"], out["fcn_ntk"], out["fcn_cov1"] = k.nngp, k.ntk, k.cov1
    out["fcn_diag_nngp"] = kernel_fn(x1, x2, "nngp", diagonal_spatial=True)
    _, _, kernel_fn = stax.serial(
        stax.Conv(8, (3, 3), padding="SAME"),
        stax.Relu(),
        stax.GlobalAvgPool(),
        stax.Dense(2),
    )
    out["gap_ntk"] = kernel_fn(x1, None, "ntk")
    return out


def predictions(nt, stax, predict) -> dict:
    """``predict`` with kernels given as matrices."""
    x_train, y_train, x_test = data(seed=2)
    _, _, kernel_fn = stax.serial(stax.Dense(64, W_std=1.2, b_std=0.1), stax.Relu(), stax.Dense(1))
    k_dd = kernel_fn(x_train, None, ("nngp", "ntk"))
    k_td = kernel_fn(x_test, x_train, ("nngp", "ntk"))
    k_tt = kernel_fn(x_test, None, "nngp")
    out = {}
    gp = predict.gp_inference(k_dd, y_train, diag_reg=1e-3)
    res = gp(get=("nngp", "ntk"), k_test_train=k_td, k_test_test=k_tt)
    out["gp_nngp_mean"], out["gp_nngp_cov"] = res.nngp.mean, res.nngp.covariance
    out["gp_ntk_mean"], out["gp_ntk_cov"] = res.ntk.mean, res.ntk.covariance
    out["gp_ntk_only"] = gp("ntk", k_td)
    out["gp_train"] = gp("nngp")
    # (NT 0.6.5's max_learning_rate fails on current SciPy, so it is not used here)
    mse = predict.gradient_descent_mse(k_dd.ntk, y_train, learning_rate=0.7)
    fx_train_0 = 0.1 * np.cos(x_train[:, :2])
    fx_test_0 = 0.1 * np.cos(x_test[:, :2])
    tr, te = mse(
        t=np.array([0.0, 3.0, 30.0]),
        fx_train_0=fx_train_0,
        fx_test_0=fx_test_0,
        k_test_train=k_td.ntk,
    )
    out["mse_train"], out["mse_test"] = tr, te
    out["mse_inf"] = mse(None, fx_train_0, fx_test_0, k_td.ntk)[1]

    def loss(fx, y):
        return -jnp.mean(
            jnp.sum(jnp.log(jnp.exp(fx) / jnp.sum(jnp.exp(fx), -1, keepdims=True)) * y, -1)
        )

    y_onehot = np.eye(2)[np.arange(len(x_train)) % 2]
    gd = predict.gradient_descent(loss, k_dd.ntk, y_onehot, learning_rate=1.0, momentum=0.5)
    tr, te = gd(2.0, np.zeros((len(x_train), 2)), np.zeros((len(x_test), 2)), k_td.ntk)
    out["gd_train"], out["gd_test"] = tr, te
    return out


def mlp_params(seed: int = 3, dims=(5, 16, 16, 3)):
    rng = np.random.default_rng(seed)
    params = []
    for a, b in zip(dims[:-1], dims[1:]):
        params.append((rng.standard_normal((a, b)) / np.sqrt(a), 0.1 * rng.standard_normal(b)))
    return params


def mlp_apply(params, x):
    """A hand-written MLP ``f(params, x)`` (the same function under both libraries)."""
    for i, (w, b) in enumerate(params):
        x = x @ w + b[None, :]
        if i < len(params) - 1:
            x = jnp.tanh(x)
    return x


def conv_params(seed: int = 4):
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.standard_normal((3, 3, 2, 6)) / 3.0,
        "w2": rng.standard_normal((2, 2, 6, 4)) / 5.0,
        "w3": rng.standard_normal((4 * 2 * 2, 3)) / 4.0,
        "b3": 0.1 * rng.standard_normal(3),
    }


def conv_apply(params, x):
    """A hand-written ConvNet (NHWC) with strided convolution and a dense readout."""
    import jax

    dn = ("NHWC", "HWIO", "NHWC")
    x = jax.lax.conv_general_dilated(x, params["w1"], (1, 1), "SAME", dimension_numbers=dn)
    x = jax.nn.relu(x)
    x = jax.lax.conv_general_dilated(x, params["w2"], (2, 2), "VALID", dimension_numbers=dn)
    x = jnp.tanh(x)
    x = jnp.reshape(x, (x.shape[0], -1))
    return x @ params["w3"] + params["b3"][None, :]


def empirical_kernels(nt, stax, predict) -> dict:
    """Empirical NNGP/NTK of hand-written networks with every implementation."""
    import jax

    x_train, _, x_test = data(seed=5)
    out = {}
    params = mlp_params()
    # NT 0.6.5's structured derivatives (implementation 3) fail on the JAX versions
    # it still installs with, so the references use implementations 1 and 2.
    for impl in (1, 2):
        ntk_fn = jax.jit(nt.empirical_ntk_fn(mlp_apply, vmap_axes=0, implementation=impl))
        out[f"mlp_ntk_{impl}"] = ntk_fn(x_train, x_test, params)
    out["mlp_ntk_full"] = nt.empirical_ntk_fn(mlp_apply, trace_axes=())(x_train, x_test, params)
    out["mlp_ntk_diag"] = nt.empirical_ntk_fn(mlp_apply, trace_axes=(), diagonal_axes=(-1,))(
        x_train, x_test, params
    )
    out["mlp_nngp"] = nt.empirical_nngp_fn(mlp_apply)(x_train, x_test, params)
    k = nt.empirical_kernel_fn(mlp_apply)(x_train, None, None, params)
    out["mlp_kernel_nngp"], out["mlp_kernel_ntk"] = k.nngp, k.ntk
    cot = np.linspace(-1.0, 1.0, len(x_test) * 3).reshape(len(x_test), 3)
    out["mlp_ntk_vp"] = nt.empirical_ntk_vp_fn(mlp_apply, x_train, x_test, params)(cot)
    x1, x2 = images(seed=6)
    cparams = conv_params()
    for impl in (1, 2):
        ntk_fn = jax.jit(nt.empirical_ntk_fn(conv_apply, vmap_axes=0, implementation=impl))
        out[f"conv_ntk_{impl}"] = ntk_fn(x1, x2, cparams)
    out["conv_ntk_full"] = nt.empirical_ntk_fn(conv_apply, trace_axes=(), implementation=2)(
        x1, x2, cparams
    )
    return out


def linearised(nt, stax, predict) -> dict:
    """``linearize`` and ``taylor_expand`` of a hand-written network."""
    x_train, _, _ = data(seed=7)
    p0 = mlp_params()
    p1 = [(w + 0.05 * np.cos(w), b - 0.03) for w, b in p0]
    out = {"lin": nt.linearize(mlp_apply, p0)(p1, x_train)}
    for d in (0, 1, 2, 3):
        out[f"taylor_{d}"] = nt.taylor_expand(mlp_apply, p0, d)(p1, x_train)
    return out


PROGRAMS = {
    "readme": readme_infinite_network,
    "cnn": convolutional_network,
    "predict": predictions,
    "empirical": empirical_kernels,
    "linearize": linearised,
}
