"""Monte Carlo agreement: finite networks at width 1024 vs the analytic kernels.

NTK: average of 128 empirical NTKs; NNGP: 32 draws of the layers below a Dense
readout, each draw giving the readout's NNGP given its input features ``h`` exactly
(``W_std^2 h h'^T / n_in + b_std^2``, the expectation over the readout weights, so the
estimate has no readout noise). The tolerance on ``||mean - analytic||_F``
is 4 times the Frobenius norm of the entrywise standard errors of the mean (from the
draws themselves) plus a finite-width allowance of ``FINITE_WIDTH / width`` of
``||analytic||_F`` for the O(1/width) bias of the expected finite-width kernel
(Hanin & Nica 2020, "Finite depth and width corrections to the neural tangent kernel").
Several layers share one network as parallel branches that each end in their own
output channel, so one compilation checks many layers (the per-branch kernels are
the diagonal over the output axis); the analytic kernels of all branches are one
compiled program too.
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
    """Kernels of ``serial(first, branch, readout)`` for every branch (one compilation)."""
    nets = [L.serial(first, b, readout) for b in branches]

    @jax.jit
    def all_kernels(a, b):
        return [kernel_fn(net, jit=False)(a, b, get=("nngp", "ntk")) for net in nets]

    return all_kernels(x1, x2)


def _mc_ntk(net, x1, x2, key=0, n=128):
    """Per-draw empirical NTKs ``(n, n1, n2, branches)``."""
    f = monte_carlo_kernel_fn(
        net, jax.random.key(key), n, trace_axes=(), diagonal_axes=(-1,), return_samples=True
    )
    return jax.jit(lambda a, b: f(a, b, get="ntk")["ntk_samples"])(x1, x2)


def _mc_nngp(first, branches, readout, x1, key=1, n=32):
    """Per-draw NNGP estimates ``(n, n1, n1, branches)`` of ``serial(first, branch,
    readout)`` for a Dense ``readout``: the finite layers below it are drawn, and the
    expectation over the readout's weights given their features is taken exactly."""
    assert isinstance(readout, L.Dense)
    feats = L.serial(first, L.FanOut(len(branches)), L.parallel(*branches))
    b_var = (readout.b_std or 0.0) ** 2

    def one(k):
        ka, kb = jax.random.split(k)
        _, params = feats.init(ka, x1.shape)
        hs = feats.apply(params, x1, key=kb)
        return jnp.stack([readout.W_std**2 * h @ h.T / h.shape[-1] + b_var for h in hs], -1)

    keys = jax.random.split(jax.random.key(key), n)
    return jax.jit(lambda: jax.lax.map(one, keys))()


def _check(names, samples, analytic, what, width=WIDTH):
    samples = np.asarray(samples, np.float64)
    mean, se = samples.mean(axis=0), standard_error(samples)
    errs, tols = {}, {}
    for j, name in enumerate(names):
        want = np.asarray(getattr(analytic[j], what), np.float64)
        scale = np.linalg.norm(want)
        errs[name] = relative_frobenius(mean[..., j], want)
        tols[name] = (Z * np.linalg.norm(se[..., j]) + FINITE_WIDTH / width * scale) / scale
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
    # NNGP of every nonlinearity below an NTK-parameterized readout.
    readout = L.Dense(1, W_std=1.3, b_std=0.1)
    nngp = _mc_nngp(first, branches, readout, x1)
    analytic = _per_branch_analytic(first, branches, readout, x1, None)
    _check(names, nngp, analytic, "nngp")


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
    readout = L.Dense(1, W_std=1.2, b_std=0.1)
    # x1 against itself: cross blocks of a few near-orthogonal inputs are too small
    # for a relative Frobenius norm to be meaningful.
    nngp = _mc_nngp(first, branches, readout, x1)
    analytic = _per_branch_analytic(first, branches, readout, x1, None)
    _check(names, nngp, analytic, "nngp")


@pytest.mark.slow
def test_attention_layernorm_dropout_ntk():
    # Width 512 with 256 draws: the per-draw NTK variance is O(1/width), so the standard
    # errors are those of 128 draws at width 1024, for half the weights drawn (the cost is
    # in drawing the attention's four width x width matrices); the finite-width
    # allowance doubles with the halved width.
    x1 = jax.random.normal(jax.random.key(14), (2, 3, 2))
    width = WIDTH // 2
    first = L.Dense(width, b_std=0.1)
    att = dict(n_chan_out=width, n_chan_key=width, n_chan_val=width, n_heads=1, b_std=0.1)
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
    mc = _mc_ntk(_branch_net(first, branches, readout), x1, None, n=256)
    _check(names, mc, analytic, "ntk", width=width)


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
