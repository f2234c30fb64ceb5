"""Monte Carlo agreement: finite networks at width 1024 vs the analytic kernels.

NTK: average of 128 empirical NTKs; NNGP: 32 draws of a network with a 1024-wide
readout, averaged over the readout channels. The tolerance on ``||mean - analytic||_F``
is 4 times the Frobenius norm of the entrywise standard errors of the mean (from the
draws themselves) plus a finite-width allowance of ``FINITE_WIDTH / WIDTH`` of
``||analytic||_F`` for the O(1/width) bias of the expected finite-width kernel
(Hanin & Nica 2020, "Finite depth and width corrections to the neural tangent kernel").
Several layers share one network as parallel branches that each end in their own
output channel, so one compilation checks many layers (the per-branch kernels are
the diagonal over the output axis).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_core.testing import relative_frobenius, standard_error
from widelab_kernels import empirical_kernel_fn, kernel_fn, monte_carlo_kernel_fn

WIDTH = 1024
Z = 4.0  # standard errors allowed (in Frobenius norm)
FINITE_WIDTH = 8.0  # allowance for the O(1/width) bias, relative to ||analytic||_F

ACTIVATIONS = {
    "Relu": L.Relu(),
    "LeakyRelu": L.LeakyRelu(0.2),
    "ABRelu": L.ABRelu(-0.5, 1.0),
    "Abs": L.Abs(),
    "Erf": L.Erf(1.0, 0.8, 0.1),
    "Gelu": L.Gelu(),
    "Sin": L.Sin(1.0, 1.0, 0.3),
    "Gaussian": L.Gaussian(1.0, -0.5),
    "Exp": L.Exp(0.5, 0.3),
    "Sign": L.Sign(),
    "Tanh": L.Tanh(),
    "ElementwiseNumerical": L.ElementwiseNumerical(jax.nn.silu, deg=30),
    "Identity": L.Identity(),
}


def _branch_net(first, branches, readout):
    return L.serial(
        first,
        L.FanOut(len(branches)),
        L.parallel(*[L.serial(b, readout) for b in branches]),
        L.FanInConcat(),
    )


def _per_branch_analytic(first, branches, readout, x1, x2):
    out = []
    for b in branches:
        k = kernel_fn(L.serial(first, b, readout))(x1, x2, get=("nngp", "ntk"))
        out.append(k)
    return out


def _mc_ntk(net, x1, x2, key=0, n=128):
    """Per-draw empirical NTKs ``(n, n1, n2, branches)``."""
    f = monte_carlo_kernel_fn(
        net, jax.random.key(key), n, trace_axes=(), diagonal_axes=(-1,), return_samples=True
    )
    return jax.jit(lambda a, b: f(a, b, get="ntk")["ntk_samples"])(x1, x2)


def _mc_nngp_wide(net, x1, x2, n_branches, key=1, n=32):
    """Per-draw NNGP estimates ``(n, n1, n2, branches)``, each averaged over a branch's
    WIDTH outputs."""

    def one(k):
        ka, kb = jax.random.split(k)
        _, params = net.init(ka, x1.shape)
        f1 = net.apply(params, x1, key=kb)
        f2 = net.apply(params, x2, key=jax.random.fold_in(kb, 1))
        f1 = f1.reshape(f1.shape[0], n_branches, -1)
        f2 = f2.reshape(f2.shape[0], n_branches, -1)
        return jnp.einsum("ajc,bjc->abj", f1, f2) / f1.shape[-1]

    keys = jax.random.split(jax.random.key(key), n)
    return jax.jit(lambda: jax.lax.map(one, keys))()


def _check(names, samples, analytic, what):
    samples = np.asarray(samples, np.float64)
    mean, se = samples.mean(axis=0), standard_error(samples)
    errs, tols = {}, {}
    for j, name in enumerate(names):
        want = np.asarray(getattr(analytic[j], what), np.float64)
        scale = np.linalg.norm(want)
        errs[name] = relative_frobenius(mean[..., j], want)
        tols[name] = (Z * np.linalg.norm(se[..., j]) + FINITE_WIDTH / WIDTH * scale) / scale
    bad = {k: (round(errs[k], 4), round(tols[k], 4)) for k in errs if errs[k] > tols[k]}
    assert not bad, f"{what} Monte Carlo vs analytic (error, tolerance): {bad}; all: {errs}"


@pytest.mark.slow
def test_fully_connected_layers_ntk_and_nngp():
    """Every nonlinearity, with a standard-parameterization readout (width-dependent
    NTK). Combinators and FanIn rules are checked exactly against Neural Tangents."""
    x1 = jax.random.normal(jax.random.key(10), (2, 3))
    x2 = jax.random.normal(jax.random.key(11), (1, 3))
    names = list(ACTIVATIONS)
    branches = list(ACTIVATIONS.values())
    first = L.Dense(WIDTH, W_std=1.4, b_std=0.2)
    readout = L.Dense(1, W_std=1.3, b_std=0.1, parameterization="standard")
    analytic = _per_branch_analytic(first, branches, readout, x1, x2)
    mc = _mc_ntk(_branch_net(first, branches, readout), x1, x2)
    _check(names, mc, analytic, "ntk")
    # NNGP with a WIDTH-wide readout on a representative subset (arc-cosine,
    # Williams, GELU, quadrature) to bound the run time.
    keep = ["Relu", "Erf", "Gelu", "Tanh"]
    sub = [branches[names.index(n)] for n in keep]
    wide = L.Dense(WIDTH, W_std=1.3, b_std=0.1)
    nngp = _mc_nngp_wide(_branch_net(first, sub, wide), x1, x1, len(sub))
    analytic = _per_branch_analytic(first, sub, wide, x1, None)
    _check(keep, nngp, analytic, "nngp")


@pytest.mark.slow
def test_spatial_layers_ntk_and_nngp():
    x1 = jax.random.normal(jax.random.key(12), (2, 4, 4, 2))
    x2 = jax.random.normal(jax.random.key(13), (1, 4, 4, 2))
    first = L.Conv(WIDTH, (3, 2), padding="SAME", W_std=1.4, b_std=0.2)
    names = ["Conv SAME + Flatten", "GlobalAvgPool", "GlobalSumPool"]
    branches = [
        L.serial(L.Relu(), L.Flatten()),
        L.serial(L.Erf(), L.GlobalAvgPool()),
        L.serial(L.Relu(), L.GlobalSumPool()),
    ]
    readout = L.Dense(1, W_std=1.2)
    analytic = _per_branch_analytic(first, branches, readout, x1, x2)
    mc = _mc_ntk(_branch_net(first, branches, readout), x1, x2)
    _check(names, mc, analytic, "ntk")
    # Local pools: finite AvgPool/SumPool are not reverse-differentiable in core
    # (lax.reduce_window with a generic computation), so they get the NNGP check.
    names += ["Conv stride CIRCULAR standard", "AvgPool", "SumPool SAME"]
    branches += [
        L.serial(
            L.Relu(),
            L.Conv(WIDTH, (2, 2), strides=(2, 2), padding="CIRCULAR", parameterization="standard"),
            L.Flatten(),
        ),
        L.serial(L.Relu(), L.AvgPool((2, 2), strides=(2, 2)), L.Flatten()),
        L.serial(L.Relu(), L.SumPool((2, 2), strides=(1, 1), padding="SAME"), L.GlobalAvgPool()),
    ]
    wide = L.Dense(WIDTH, W_std=1.2, b_std=0.1)
    # x1 against itself: cross blocks of a few near-orthogonal inputs are too small
    # for a relative Frobenius norm to be meaningful.
    nngp = _mc_nngp_wide(_branch_net(first, branches, wide), x1, x1, len(branches))
    analytic = _per_branch_analytic(first, branches, wide, x1, None)
    _check(names, nngp, analytic, "nngp")


@pytest.mark.slow
def test_attention_layernorm_dropout_ntk():
    x1 = jax.random.normal(jax.random.key(14), (2, 3, 2))
    first = L.Dense(WIDTH, b_std=0.1)
    att = dict(n_chan_out=WIDTH, n_chan_key=WIDTH, n_chan_val=WIDTH, n_heads=1, b_std=0.1)
    # (the identity mechanism and positional embeddings are covered exactly by the
    # Neural Tangents reference test)
    names = ["attention softmax + LayerNorm", "Dropout"]
    branches = [
        L.serial(
            L.GlobalSelfAttention(**att, W_query_std=0.8, W_key_std=1.2),
            L.LayerNorm(),
            L.Relu(),
            L.GlobalAvgPool(),
        ),
        L.serial(L.Relu(), L.Dropout(0.3), L.Flatten()),
    ]
    readout = L.Dense(1)
    # x2 = None: dropout correlates an example with itself (the diagonal).
    analytic = _per_branch_analytic(first, branches, readout, x1, None)
    mc = _mc_ntk(_branch_net(first, branches, readout), x1, None)
    _check(names, mc, analytic, "ntk")


def _relu_moments(k11, k12, k22):
    """E[relu(u) relu(v)] and E[relu'(u) relu'(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]])."""
    norm = np.sqrt(k11 * k22)
    theta = np.arctan2(np.sqrt(np.maximum(k11 * k22 - k12**2, 0.0)), k12)
    e_relu = norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
    e_step = (np.pi - theta) / (2 * np.pi)
    return e_relu, e_step


@pytest.mark.slow
def test_init_apply_pair_matches_arc_cosine_closed_form_within_standard_errors():
    x = np.random.default_rng(5).normal(size=(4, 3))
    d, width, k = 3, 128, 64
    s1, b1, s2, b2 = 1.4, 0.3, 1.2, 0.2
    net = L.serial(L.Dense(width, W_std=s1, b_std=b1), L.Relu(), L.Dense(k, W_std=s2, b_std=b2))
    key, n = jax.random.key(11), 48
    mc = monte_carlo_kernel_fn((net.init, net.apply), key, n, batch_size=2, return_samples=True)
    est = mc(x, None, get=("nngp", "ntk"))
    # Draw i uses init(split(split(key, n)[i])[0]): check one draw against empirical kernels.
    k_init = jax.random.split(jax.random.split(key, n)[5])[0]
    one = empirical_kernel_fn(net.apply)(x, None, ("nngp", "ntk"), net.init(k_init, x.shape)[1])
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(est[f"{name}_samples"][5], one[name], rtol=1e-5, atol=1e-6)
    # First-layer pre-activations are exactly Gaussian with covariance k0, so the expected
    # empirical kernel equals the infinite-width kernel at any width.
    k0 = s1**2 / d * x @ x.T + b1**2
    dg = np.diag(k0)
    e_relu, e_step = _relu_moments(dg[:, None], k0, dg[None, :])
    nngp = s2**2 * e_relu + b2**2
    want = {"nngp": nngp, "ntk": nngp + s2**2 * e_step * k0}
    for name in ("nngp", "ntk"):
        samples = np.asarray(est[f"{name}_samples"])
        np.testing.assert_allclose(est[name], samples.mean(0), rtol=1e-5, atol=1e-6)
        se = standard_error(samples)
        assert np.all(se < 0.05 * np.abs(want[name]).max())  # the check has power
        z = np.abs(np.asarray(est[name]) - want[name]) / se
        assert z.max() < 4.5, (name, z.max())


def test_bad_inputs_have_clear_errors():
    net = L.Dense(2)
    with pytest.raises(ValueError, match="n_samples must be"):
        monte_carlo_kernel_fn(net, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="batch_size must be"):
        monte_carlo_kernel_fn(net, jax.random.key(0), 4, batch_size=0)
    with pytest.raises(ValueError, match="init_fn, apply_fn"):
        monte_carlo_kernel_fn((net.init,), jax.random.key(0), 4)
    with pytest.raises(ValueError, match="get must name"):
        monte_carlo_kernel_fn(net, jax.random.key(0), 2)(jnp.ones((2, 3)), None, get="cov")
