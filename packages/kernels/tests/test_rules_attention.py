"""Attention kernels: ``linear_scaling=False`` (Hron et al. 2020), the ABS/RELU
mechanisms, correlated positional embeddings and every embedding combination.

References: Neural Tangents 0.6.5 (``benchmarks/nt_reference_more.py``, float64) and
Monte Carlo over finite-width ``init``/``apply`` with standard-error tolerances.
"""

import importlib.util
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core import layers as L
from widelab_kernels import KernelError, kernel_fn

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("nt_nets_more", HERE / "nt_nets_more.py")
nt_nets_more = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nt_nets_more)
REFERENCE = np.load(HERE / "data" / "nt_reference_more.npz")


@pytest.mark.parametrize("scaling", ["linear", "sqrt"])
def test_matches_neural_tangents_float64(scaling):
    with jax.enable_x64(True):
        cases = [c for c in nt_nets_more.cases(L) if c[0].startswith(f"att_{scaling}_")]
        assert len(cases) >= 20

        @jax.jit
        def all_kernels(inputs):
            out = []
            for (_, net, _, _, mc), (x1, x2) in zip(cases, inputs):
                k = kernel_fn(net, jit=False)(x1, x2, get=("nngp", "ntk"), mask_constant=mc)
                out.append((k.nngp, k.ntk))
            return out

        results = all_kernels([(c[2], c[3]) for c in cases])
        for (case, *_), (nngp, ntk) in zip(cases, results):
            for got, want, what in zip((nngp, ntk), REFERENCE[case], ("nngp", "ntk")):
                got = np.asarray(got)
                assert got.dtype == np.float64 and got.shape == want.shape, (case, what)
                err = np.max(np.abs(got - want)) / np.max(np.abs(want))
                assert err < 1e-12, f"{case} {what}: relative error {err:.2e}"


def _mc_nngp(layer, x, n_draws, key=0, mask_constant=None):
    """Per-draw channel-averaged ``y(x_a, p) y(x_b, q)``; returns mean and standard error."""

    def draw(k):
        _, params = layer.init(k, x.shape)
        y = layer.apply(params, x, mask_constant=mask_constant)
        y = jnp.reshape(y, (y.shape[0], -1, y.shape[-1]))
        return jnp.einsum("apc,bqc->abpq", y, y) / y.shape[-1]

    samples = jax.jit(jax.vmap(draw))(jax.random.split(jax.random.key(key), n_draws))
    return jnp.mean(samples, 0), jnp.std(samples, 0) / math.sqrt(n_draws)


def _z(mean, se, want):
    return float(np.max(np.abs(np.asarray(mean) - np.asarray(want)) / (np.asarray(se) + 1e-6)))


@pytest.mark.parametrize("causal", [False, True])
def test_sqrt_scaling_identity_mean_is_exact_at_finite_width(causal):
    # With independent query, key and value weights E[y y'] equals the kernel exactly
    # for any widths and heads when the layer acts on fixed inputs.
    x = np.random.default_rng(0).normal(size=(3, 4, 3)).astype(np.float32)
    x[0, 3:] = 7.0  # one padded position
    att = L.GlobalSelfAttention(
        32,
        8,
        8,
        4,
        linear_scaling=False,
        attention_mechanism="IDENTITY",
        b_std=0.2,
        W_query_std=0.9,
        W_value_std=1.1,
        causal=causal,
    )
    mean, se = _mc_nngp(att, jnp.asarray(x), 400, mask_constant=7.0)
    want = kernel_fn(att)(x, None, get="nngp", mask_constant=7.0)
    real = ~np.all(x == 7.0, -1)  # outputs at padded positions are not compared
    pair = real[:, None, :, None] & real[None, :, None, :]
    z = np.abs(np.asarray(mean) - np.asarray(want)) / (np.asarray(se) + 1e-6)
    assert z[pair].max() < 5, f"{z[pair].max():.1f} standard errors off"


@pytest.mark.parametrize("mechanism", ["ABS", "RELU"])
def test_abs_relu_mechanisms_agree_with_wide_monte_carlo(mechanism):
    # Tied query/key weights: logits concentrate as n_chan_key grows (bias O(1/n_key),
    # far below the standard error here).
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 4)), jnp.float32)
    att = L.GlobalSelfAttention(16, 8192, 4, 1, attention_mechanism=mechanism, b_std=0.1)
    mean, se = _mc_nngp(att, x, 200, key=1)
    want = kernel_fn(att)(x, None, get="nngp")
    assert _z(mean, se, want) < 5


def test_correlated_positional_embeddings_have_the_decay_covariance():
    decay = lambda d: jnp.exp(-d / 3)
    att = L.GlobalSelfAttention(
        4,
        4,
        4,
        1,
        pos_emb_type="CONCAT",
        n_chan_pos_emb=20000,
        pos_emb_p_norm=1,
        pos_emb_decay_fn=decay,
        W_pos_emb_std=1.5,
    )
    x = jnp.zeros((1, 3, 2, 2))
    _, params = att.init(jax.random.key(2), x.shape)
    e = jnp.reshape(att.positional_embeddings(params, x)[0], (6, -1))
    samples = e[:, None] * e[None]
    mean, se = jnp.mean(samples, -1), jnp.std(samples, -1) / math.sqrt(e.shape[-1])
    coords = np.array([(i, j) for i in range(3) for j in range(2)])
    dist = np.abs(coords[:, None] - coords[None]).sum(-1)
    assert _z(mean, se, 1.5**2 * np.exp(-dist / 3)) < 5


def test_sqrt_scaling_kernel_runs_in_float32_under_vmap_and_grad():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 2)), jnp.float32)

    def total(w):
        att = L.GlobalSelfAttention(
            4, 4, 4, 2, linear_scaling=False, attention_mechanism="IDENTITY", W_out_std=w
        )
        net = L.serial(L.Dense(4), att, L.GlobalAvgPool(), L.Dense(1))
        return jnp.sum(kernel_fn(net, jit=False)(x, None, get="ntk"))

    vals = jax.vmap(total)(jnp.array([0.5, 1.0], jnp.float32))
    g = jax.grad(total)(jnp.float32(1.0))
    assert vals.dtype == jnp.float32
    # The kernel is quadratic in W_out_std: d/dw at 1 is twice the value.
    np.testing.assert_allclose(g, 2 * vals[1], rtol=1e-5)
    np.testing.assert_allclose(vals[0], vals[1] / 4, rtol=1e-5)


def test_sqrt_scaling_without_closed_form_is_a_clear_error():
    att = L.GlobalSelfAttention(4, 4, 4, 1, linear_scaling=False)
    with pytest.raises(KernelError, match="linear_scaling=False and attention_mechanism='SOFTMAX'"):
        kernel_fn(att)(jnp.ones((2, 3, 2)))
    with pytest.raises(ValueError, match="attention_mechanism must be one of"):
        L.GlobalSelfAttention(4, 4, 4, 1, attention_mechanism="GELU")
    with pytest.raises(ValueError, match="pos_emb_decay_fn must be callable"):
        L.GlobalSelfAttention(4, 4, 4, 1, pos_emb_decay_fn=3.0)
