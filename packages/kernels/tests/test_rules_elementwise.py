"""Closed-form kernels of the newer nonlinearities and one rule per layer class.

Reference kernels: Neural Tangents 0.6.5 (``benchmarks/nt_reference_more.py``, float64),
independent closed forms and quadrature where Neural Tangents is NaN or approximate,
and Monte Carlo over finite-width ``init``/``apply`` with standard-error tolerances.
"""

import dataclasses
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
PARS = ("ntk", "standard")


def test_matches_neural_tangents_float64():
    with jax.enable_x64(True):
        cases = [c for c in nt_nets_more.cases(L) if not c[0].startswith("att_")]

        @jax.jit
        def all_kernels(inputs):
            out = []
            for (_, net, *_), (x1, x2) in zip(cases, inputs):
                k = kernel_fn(net, jit=False)(x1, x2, get=("nngp", "ntk"))
                out.append((k.nngp, k.ntk))
            return out

        results = all_kernels([(c[2], c[3]) for c in cases])
        nans = []
        for (case, *_), (nngp, ntk) in zip(cases, results):
            ref = REFERENCE[case]
            for got, want, what in ((nngp, ref[0], "nngp"), (ntk, ref[1], "ntk")):
                got = np.asarray(got)
                assert got.dtype == np.float64 and got.shape == want.shape, (case, what)
                assert np.all(np.isfinite(got)), (case, what)
                ok = np.isfinite(want)
                if not ok.all():  # NT's RectifiedMonomial is NaN on the diagonal
                    assert "rectmono" in case and case.endswith("x1x1"), (case, what)
                    nans.append(case)
                    assert ok.sum() == ok.size - ok.shape[0], (case, what)
                err = np.max(np.abs(got - want)[ok]) / np.max(np.abs(want[ok]))
                assert err < 1e-9, f"{case} {what}: relative error {err:.2e}"
        assert sorted(set(nans)) == [
            f"mlp1_rectmono{d}_{p}|vec|x1x1" for d in (0, 1, 3) for p in PARS
        ]


def _double_factorial(n):
    return math.prod(range(n, 0, -2))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_rectified_monomial_exact_on_the_diagonal(degree):
    # E[relu(u)^(2n)] = (2n - 1)!! q^n / 2 and E[(n relu(u)^(n-1))^2] = n^2 (2n-3)!! q^(n-1) / 2.
    with jax.enable_x64(True):
        x = np.random.default_rng(0).normal(size=(3, 4))
        net = L.serial(L.Dense(8, W_std=1.4, b_std=0.3), L.RectifiedMonomial(degree))
        k = kernel_fn(net)(x, None, get=("nngp", "ntk", "cov1"))
        q = 1.4**2 * np.sum(x * x, axis=-1) / 4 + 0.3**2
        want = _double_factorial(2 * degree - 1) * q**degree / 2
        np.testing.assert_allclose(np.diag(k.nngp), want, rtol=1e-13)
        np.testing.assert_allclose(k.cov1, want, rtol=1e-13)
        dot = (
            0.0
            if degree == 0
            else degree**2 * _double_factorial(2 * degree - 3) * q ** (degree - 1) / 2
        )
        np.testing.assert_allclose(np.diag(k.ntk), q * dot, rtol=1e-13)  # Theta_in = q


def test_repeated_sign_exact_against_arcsine_recursion():
    # E[sign u sign v] = 2/pi arcsin(rho): an independent formula for the whole chain,
    # evaluated in extended precision. A nearly parallel pair makes the chain
    # ill-conditioned; rounding the correlation of an example with itself (rather than
    # setting it to exactly 1) costs sqrt(eps) ~ 1e-8 per layer here.
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        x = rng.normal(size=(5, 3))
        x[1] = x[0] + 1e-4 * rng.normal(size=3)
        depth, w, b = 4, 1.2, 0.1
        layers = []
        for _ in range(depth):
            layers += [L.Dense(16, W_std=w, b_std=b), L.Sign()]
        net = L.serial(*layers, L.Dense(1, W_std=w, b_std=b))
        got = np.asarray(kernel_fn(net)(x, None, get="nngp"))
        xl = x.astype(np.longdouble)
        w, b = np.longdouble(w), np.longdouble(b)
        k = xl @ xl.T / x.shape[1]
        for _ in range(depth):
            k = w**2 * k + b**2
            d = np.sqrt(np.diag(k))
            rho = np.clip(k / np.outer(d, d), -1, 1)
            np.fill_diagonal(rho, 1.0)  # an example with itself: correlation exactly 1
            k = 2 / np.pi * np.arcsin(rho)
        k = np.asarray(w**2 * k + b**2, np.float64)
        np.testing.assert_allclose(got, k, rtol=2e-9, atol=1e-12)


# ---------------------------------------------------------------- Monte Carlo
MC_LAYERS = {
    "gabor": L.Gabor(),
    "rbf": L.Rbf(0.6),
    "monomial3": L.Monomial(3),
    "hermite3": L.Hermite(3),
    "rectmono2": L.RectifiedMonomial(2),
    "poly": L.Polynomial((0.3, -1.0, 0.5, 0.2)),
    "elementwise": L.Elementwise(jax.scipy.special.erf, nt_nets_more.erf_nngp),
}


@pytest.mark.parametrize("name", sorted(MC_LAYERS))
def test_finite_width_apply_agrees_with_kernel_within_standard_errors(name):
    act = MC_LAYERS[name]
    width = 20000
    x = jnp.asarray(np.random.default_rng(3).normal(size=(3, 4)), jnp.float32)
    hidden = L.Dense(width, W_std=1.1, b_std=0.2)
    _, params = hidden.init(jax.random.key(7), x.shape)
    h = hidden.apply(params, x)  # (3, width): iid Gaussian units
    f, df = act.apply((), h), jax.vmap(jax.vmap(jax.grad(act.fn)))(h)
    net = L.serial(hidden, act, L.Dense(1))
    k = kernel_fn(net)(x, None, get=("nngp", "ntk"))
    theta_in = kernel_fn(hidden)(x, None, get="ntk")
    for samples, want in (
        (f[:, None] * f[None], k.nngp),
        # NTK = E[f f] + Theta_in * E[f' f'] after the readout.
        (f[:, None] * f[None] + theta_in[..., None] * df[:, None] * df[None], k.ntk),
    ):
        mean = jnp.mean(samples, -1)
        se = jnp.std(samples, -1) / math.sqrt(width)
        z = np.asarray(jnp.abs(mean - want) / (se + 1e-6))
        assert z.max() < 5, f"{name}: {z.max():.1f} standard errors off"


# ---------------------------------------------------------------- registry
def test_subclass_with_its_own_fn_has_no_inherited_kernel():
    @dataclasses.dataclass(frozen=True)
    class Softplus(L.Relu):
        def fn(self, x):
            return jax.nn.softplus(x)

    x = jnp.ones((2, 3))
    with pytest.raises(KernelError, match="Softplus is a subclass of Relu but Softplus defines"):
        kernel_fn(L.serial(L.Dense(4), Softplus()))(x)

    @dataclasses.dataclass(frozen=True)
    class Scaled(L.Relu):
        scale: float = 2.0

    with pytest.raises(KernelError, match="adds the field"):
        kernel_fn(L.serial(L.Dense(4), Scaled()))(x)

    @dataclasses.dataclass(frozen=True)
    class MyRelu(L.Relu):
        """Same map, new name."""

    a = kernel_fn(L.serial(L.Dense(4), MyRelu()))(x, get="nngp")
    b = kernel_fn(L.serial(L.Dense(4), L.Relu()))(x, get="nngp")
    np.testing.assert_array_equal(a, b)


def test_own_elementwise_layer_uses_quadrature_of_its_fn():
    @dataclasses.dataclass(frozen=True)
    class Cube(L.ElementwiseLayer):
        def fn(self, x):
            return x**3

    with jax.enable_x64(True):
        x = np.random.default_rng(4).normal(size=(3, 4))
        got = kernel_fn(L.serial(L.Dense(4), Cube()))(x, get=("nngp", "ntk"))
        want = kernel_fn(L.serial(L.Dense(4), L.Monomial(3)))(x, get=("nngp", "ntk"))
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-10)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-10)


def test_user_closed_form_derivative_by_autodiff_matches_erf():
    with jax.enable_x64(True):
        x = np.random.default_rng(5).normal(size=(3, 4))
        user = L.Elementwise(nngp_fn=nt_nets_more.erf_nngp)
        got = kernel_fn(L.serial(L.Dense(8, b_std=0.1), user))(x, get=("nngp", "ntk"))
        want = kernel_fn(L.serial(L.Dense(8, b_std=0.1), L.Erf()))(x, get=("nngp", "ntk"))
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-12)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-12)
        with pytest.raises(L.LayerError, match="no finite-width map"):
            user.apply((), jnp.ones((2, 3)))


def test_float32_jit_and_grad_through_new_kernels():
    x = jnp.asarray(np.random.default_rng(6).normal(size=(3, 4)), jnp.float32)

    def loss(w):
        net = L.serial(
            L.Dense(8, W_std=w), L.RectifiedMonomial(2), L.Dense(8), L.Gabor(), L.Dense(1)
        )
        return jnp.sum(kernel_fn(net, jit=False)(x, None, get="ntk"))

    val, g = jax.jit(jax.value_and_grad(loss))(jnp.float32(1.3))
    assert val.dtype == jnp.float32 and np.isfinite(g)
    eps = 1e-2
    fd = (loss(1.3 + eps) - loss(1.3 - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=2e-2)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="degree must be a non-negative integer, got -1"):
        L.Monomial(-1)
    with pytest.raises(ValueError, match="degree must be a non-negative integer"):
        L.RectifiedMonomial(1.5)
    with pytest.raises(TypeError, match="give fn, nngp_fn or both"):
        L.Elementwise()
    with pytest.raises(L.LayerError, match="no finite-width map"):
        L.ExpNormalized().apply((), jnp.ones((2, 3)))
