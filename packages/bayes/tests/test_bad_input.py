"""Bad input to the samplers and MMD helpers: a clear error naming the argument, never
an empty result or a NaN; plus property tests of the MMD estimator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from widelab_bayes import (
    BNN,
    gp_samples,
    mmd2_unbiased,
    rejection_sample,
    relu_nngp,
    sample_ghmc,
)
from widelab_bayes.studies import mlp, sample_bnn

KEY = jax.random.key(0)


def _logdensity(x):
    return -0.5 * jnp.sum(x**2)


def test_sample_ghmc_zero_chains():
    with pytest.raises(ValueError, match=r"at least one chain .* got shape \(0, 3\)"):
        sample_ghmc(KEY, _logdensity, jnp.zeros((0, 3)), num_warmup=1, num_samples=1)


def test_sample_ghmc_zero_samples():
    with pytest.raises(ValueError, match="num_samples >= 1"):
        sample_ghmc(KEY, _logdensity, jnp.zeros((2, 3)), num_warmup=1, num_samples=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width must be an integer >= 1, got 0"),
        ({"chains": 0}, "chains must be an integer >= 1, got 0"),
        ({"num_samples": 0}, "num_samples must be an integer >= 1, got 0"),
        ({"num_warmup": -1}, "num_warmup must be an integer >= 0, got -1"),
        ({"depth": -1}, "depth must be an integer >= 1, got -1"),
        ({"noise_std": 0.0}, "noise_std must be a finite number > 0"),
    ],
)
def test_sample_bnn_settings(kwargs, message):
    args = {"width": 4, **kwargs}
    width = args.pop("width")
    with pytest.raises(ValueError, match=message):
        sample_bnn(KEY, width, "plain-ghmc", **args)


def test_rejection_zero_proposals():
    x = jnp.linspace(-1, 1, 3)[:, None]
    model = BNN(mlp(4), x, jnp.sin(x), noise_std=0.3)
    with pytest.raises(ValueError, match="num_proposals .* must be positive, got 0"):
        rejection_sample(KEY, model, 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_mmd_with_nan(bad):
    x = np.random.default_rng(0).normal(size=(5, 2))
    y = x.copy()
    y[3, 1] = bad
    with pytest.raises(ValueError, match=r"y must be finite, got .* at index \(3, 1\)"):
        mmd2_unbiased(x, y, 1.0)


def test_gp_samples_non_psd():
    with pytest.raises(ValueError, match="cov must be positive semi-definite, got smallest eig"):
        gp_samples(KEY, jnp.array([[1.0, 2.0], [2.0, 1.0]]), 10)
    with pytest.raises(ValueError, match="cov must be symmetric"):
        gp_samples(KEY, jnp.array([[1.0, 0.5], [0.0, 1.0]]), 10)
    with pytest.raises(ValueError, match="num must be an integer >= 1, got 0"):
        gp_samples(KEY, jnp.eye(2), 0)


@pytest.mark.parametrize("depth", [-1, 0])
def test_relu_nngp_depth(depth):
    with pytest.raises(ValueError, match=f"depth must be an integer >= 1, got {depth}"):
        relu_nngp(jnp.ones((3, 2)), depth, 1.0, 0.1)


def test_relu_nngp_nan_inputs():
    with pytest.raises(ValueError, match="W_std must be a finite number, got nan"):
        relu_nngp(jnp.ones((3, 2)), 1, float("nan"), 0.1)
    with pytest.raises(ValueError, match="x must be finite"):
        relu_nngp(jnp.array([[1.0, np.nan]]), 1, 1.0, 0.1)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(0, 4),
    n=st.integers(0, 4),
    d=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    lengthscale=st.sampled_from([0.3, 1.0, 3.0, 0.0, -1.0, float("nan")]),
    poison=st.sampled_from([None, np.nan, np.inf]),
)
def test_mmd2_unbiased_random_inputs(m, n, d, seed, lengthscale, poison):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(m, d)), rng.normal(size=(n, d))
    if poison is not None and m:
        x[rng.integers(m), rng.integers(d)] = poison
    valid = m >= 2 and n >= 2 and lengthscale > 0 and (poison is None)
    if not valid:
        with pytest.raises(ValueError):
            mmd2_unbiased(x, y, lengthscale)
        return
    est = float(mmd2_unbiased(x, y, lengthscale))
    # direct double sum of Gretton et al. 2012, eq. 3
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * lengthscale**2))
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(a, b) for a in x for b in y) / (m * n)
    assert est == pytest.approx(sxx + syy - 2 * sxy, abs=1e-5)


@settings(max_examples=10, deadline=None)
@given(n=st.sampled_from([1, 3]), seed=st.integers(0, 2**16))
def test_gp_samples_accepts_any_psd_and_returns_finite(n, seed):
    num = 3
    a = np.random.default_rng(seed).normal(size=(n, max(n - 1, 1)))
    cov = jnp.asarray(a @ a.T)  # rank-deficient but PSD
    out = gp_samples(jax.random.key(seed), cov, num)
    assert out.shape == (num, n) and np.isfinite(np.asarray(out)).all()
