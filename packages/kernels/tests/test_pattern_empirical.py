"""Graph networks (``Aggregate``) through the finite-width kernels: the empirical NNGP/NTK
with ``pattern`` against Jacobians taken by hand, the Monte Carlo estimate against the
analytic kernel within standard errors, and every tiled or batched path against the
untiled kernel (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import widelab_kernels.nt as nt
from widelab_kernels import analytic, empirical_kernel_fn, kernel_fn, monte_carlo_kernel_fn
from widelab_kernels.nt import stax


def _net(width: int, out: int):
    return stax.serial(
        stax.Dense(width, W_std=1.3, b_std=0.2),
        stax.Aggregate(),
        stax.Relu(),
        stax.Aggregate(),
        stax.GlobalSumPool(),
        stax.Dense(out, W_std=0.9, b_std=0.1),
    )


def _data(n1=5, n2=3, v=4, c=2, seed=0):
    """Inputs and two different random graphs (dense adjacencies with weights)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(n1, v, c)), rng.normal(size=(n2, v, c))
    p1 = (rng.random((n1, v, v)) < 0.5) * rng.uniform(0.5, 1.5, (n1, v, v))
    p2 = (rng.random((n2, v, v)) < 0.5) * rng.uniform(0.5, 1.5, (n2, v, v))
    return x1, x2, p1, p2


def _by_hand(apply_fn, params, x1, x2, p1, p2):
    """NNGP and NTK traced over the output channels from ``jax.jacobian``."""
    f1, f2 = apply_fn(params, x1, pattern=p1), apply_fn(params, x2, pattern=p2)
    jac = lambda x, p: jax.jacobian(lambda q: apply_fn(q, x, pattern=p))(params)
    j1, j2 = jax.tree_util.tree_leaves(jac(x1, p1)), jax.tree_util.tree_leaves(jac(x2, p2))
    flat = lambda j, n: jnp.reshape(j, (n, f1.shape[-1], -1))
    ntk = sum(
        jnp.einsum("icp,jcp->ij", flat(a, x1.shape[0]), flat(b, x2.shape[0]))
        for a, b in zip(j1, j2)
    )
    c = f1.shape[-1]
    return f1 @ f2.T / c, ntk / c


def test_empirical_kernels_with_a_pattern_equal_the_jacobian_by_hand():
    x1, x2, p1, p2 = _data()
    init_fn, apply_fn, _ = _net(6, 3)
    with jax.enable_x64(True):
        _, params = init_fn(jax.random.key(0), x1.shape)

        @jax.jit
        def all_forms(x1, x2, p1, p2, params):
            out = {"hand": _by_hand(apply_fn, params, x1, x2, p1, p2)}
            out["hand11"] = _by_hand(apply_fn, params, x1, x1, p1, p1)
            out["no_graph"] = _by_hand(apply_fn, params, x1, x2, None, None)
            for impl in ("jacobian", "ntvp", "structured"):
                f = empirical_kernel_fn(apply_fn, implementation=impl)
                k = f(x1, x2, ("nngp", "ntk"), params, pattern=(p1, p2))
                out[impl] = (k["nngp"], k["ntk"])
            # NT's calling form: pattern split between x1 and x2 as NT's **apply_fn_kwargs
            vm = nt.empirical_kernel_fn(
                apply_fn, implementation=3, vmap_axes=(0, 0, {"pattern": 0})
            )
            out["nt_vmap"] = tuple(vm(x1, x2, None, params, pattern=(p1, p2)))
            ntk_fn = nt.empirical_ntk_fn(apply_fn, implementation=2)
            nngp_fn = nt.empirical_nngp_fn(apply_fn)
            out["nt11"] = (
                nngp_fn(x1, None, params, pattern=(p1, None)),
                ntk_fn(x1, None, params, pattern=p1),
            )
            out["wl11"] = tuple(
                empirical_kernel_fn(apply_fn)(
                    x1, None, ("nngp", "ntk"), params, pattern=(p1, None)
                ).values()
            )
            return out

        out = jax.device_get(all_forms(x1, x2, p1, p2, params))
    nngp, ntk = out["hand"]
    assert ntk.shape == (5, 3) and float(np.min(np.abs(ntk))) > 1e-3
    for name in ("jacobian", "ntvp", "structured", "nt_vmap"):
        np.testing.assert_allclose(out[name][0], nngp, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(out[name][1], ntk, rtol=1e-12, err_msg=name)
    for name in ("nt11", "wl11"):
        np.testing.assert_allclose(out[name][0], out["hand11"][0], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(out[name][1], out["hand11"][1], rtol=1e-12, err_msg=name)
    # the graphs matter: without them the kernel is another one
    assert np.max(np.abs(ntk - out["no_graph"][1])) > 0.1 * np.max(np.abs(ntk))


def test_monte_carlo_estimate_with_a_pattern_is_within_standard_errors():
    # One hidden nonlinearity after a Dense layer on the inputs: its pre-activations are
    # exactly Gaussian at any width, so each draw's NNGP and NTK are unbiased estimates
    # and the mean over draws is within a few standard errors of the analytic kernel.
    x1, x2, p1, p2 = _data(seed=1)
    net = _net(128, 64)
    n = 24
    with jax.enable_x64(True):
        want = kernel_fn(net)(x1, x2, ("nngp", "ntk"), pattern=(p1, p2))
        mc = monte_carlo_kernel_fn(net, jax.random.key(3), n, return_samples=True)
        got = jax.device_get(mc(x1, x2, ("nngp", "ntk"), pattern=(p1, p2)))
        # the same draws tiled 2 x 2 (each example's graph cut with it)
        tiled = monte_carlo_kernel_fn(net, jax.random.key(3), n, batch_size=2)
        got_tiled = tiled(x1, x2, "nngp", pattern=(p1, p2))
    np.testing.assert_allclose(got_tiled, got["nngp"], rtol=1e-13)
    for name in ("nngp", "ntk"):
        exact = np.asarray(getattr(want, name))
        se = np.std(got[f"{name}_samples"], axis=0, ddof=1) / np.sqrt(n)
        scale = np.max(np.abs(exact))
        assert np.all(se > 0) and np.max(se) < 0.1 * scale, name
        z = np.abs(got[name] - exact) / se
        assert np.max(z) < 4.5, (name, np.max(z))


def test_tiled_and_batched_kernels_with_a_pattern_equal_the_untiled_ones(monkeypatch):
    x1, x2, p1, p2 = _data(n1=5, n2=3)
    net = _net(8, 2)
    nt_kernel_fn = net.kernel_fn
    with jax.enable_x64(True):
        whole = kernel_fn(net)(x1, x2, ("nngp", "ntk"), pattern=(p1, p2))
        whole11 = kernel_fn(net)(x1, None, ("nngp", "ntk"), pattern=(p1, None))
        # batch_size tiling through pairwise_tiled (x2 None: upper tiles mirrored)
        tiled = kernel_fn(net, batch_size=2)
        got = {
            "x1x1": tiled(x1, None, ("nngp", "ntk"), pattern=(p1, None)),
            "nt.batch": nt.batch(nt_kernel_fn, 2)(x1, x2, ("nngp", "ntk"), pattern=(p1, p2)),
        }
        # tiles inside the compiled program (large kernels), forced small here
        monkeypatch.setattr(analytic, "TILE_MIN_ENTRIES", 1)
        monkeypatch.setattr(analytic, "TILE_ENTRIES", 4 * 4 * 4)
        in_program = analytic.KernelFn(net)  # a fresh one: kernel_fn(net) is cached
        assert analytic.tile_rows(5, 3, 4 * 4) == 2
        got["program_x1x2"] = in_program(x1, x2, ("nngp", "ntk"), pattern=(p1, p2))
        got["program_x1x1"] = in_program(x1, None, ("nngp", "ntk"), pattern=(p1, None))
        monkeypatch.undo()
    for name, k in got.items():
        ref = whole11 if name.endswith("x1x1") else whole
        for f in ("nngp", "ntk"):
            np.testing.assert_allclose(
                getattr(k, f), getattr(ref, f), rtol=1e-13, atol=1e-13, err_msg=name
            )
    with pytest.raises(ValueError, match="pattern"):
        nt.batch(nt_kernel_fn, 2)(x1, x2, "ntk", pattern=p1)
    with pytest.raises(ValueError, match="pattern"):
        monte_carlo_kernel_fn(net, jax.random.key(0), 1)(x1, x2, "ntk", pattern=(p1, None))
