"""Shared by the Neural Tangents fixture tests of single layer families: load a fixture
set written by ``benchmarks/nt_reference_cases.py`` and compare widelab's kernels with it."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from widelab_kernels import kernel_fn
from widelab_kernels.nt import stax

HERE = pathlib.Path(__file__).resolve().parent


def load(name: str):
    """``(networks module tests/nt_nets_<name>.py, reference arrays)``."""
    module = f"nt_nets_{name}"
    spec = importlib.util.spec_from_file_location(module, HERE / f"{module}.py")
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    return nets, np.load(HERE / "data" / f"nt_reference_{name}.npz")


def assert_matches_reference(nets, reference, auto_cases=()) -> None:
    """Every case of ``nets`` through ``nt.stax`` (one jit compilation) equals NT's kernels;
    the cases in ``auto_cases`` also through widelab's own layout choice (same-position
    covariances where enough). A case may carry a fifth item, keyword arguments of the
    kernel function (``pattern``); ``nets.KERNEL_KWARGS`` (if set) go to every kernel call."""
    cases = list(nets.cases(stax))
    kwargs = getattr(nets, "KERNEL_KWARGS", {})
    with jax.enable_x64(True):

        @jax.jit
        def all_kernels(inputs):
            out = {}
            for (case, net, *_), (x1, x2, kw) in zip(cases, inputs):
                k = net[2](x1, x2, ("nngp", "ntk"), **kwargs, **kw)
                out[case] = jnp.stack([k.nngp, k.ntk])
                if case in auto_cases:
                    auto = kernel_fn(net, jit=False)(x1, x2, ("nngp", "ntk"), **kwargs, **kw)
                    out[case + "|auto"] = jnp.stack([auto.nngp, auto.ntk])
            return out

        got = all_kernels([(c[2], c[3], c[4] if len(c) > 4 else {}) for c in cases])
    assert len(cases) == len(reference.files)
    for case, *_ in cases:
        want = reference[case]
        ours = np.asarray(got[case])
        assert ours.shape == want.shape, (case, ours.shape, want.shape)
        scale = np.max(np.abs(want))
        err = np.max(np.abs(ours - want)) / scale
        # NT's arc-cosine kernel loses ~1e-9 (relative) on the diagonal of x1 = x2.
        tol = 3e-9 if case.endswith("x1x1") or "1d" in case else 1e-12
        assert err < tol, (case, err)
        if case + "|auto" in got:
            auto_err = np.max(np.abs(np.asarray(got[case + "|auto"]) - want)) / scale
            assert auto_err < tol, (case, "auto layout", auto_err)


def assert_wide_draws_match(net, x, kernel, *, key, draws, out, apply_kwargs=None):
    """Monte Carlo check of ``kernel`` (with ``nngp`` and ``ntk``) for a network whose
    first layer's outputs are exactly Gaussian, so the per-draw estimators are unbiased
    at any width: the NNGP as the mean of ``f f^T`` over the ``out`` readout channels,
    the NTK as ``J J^T`` of output 0. Their means over ``draws`` initialisations must
    lie within 4.5 standard errors of the analytic values entrywise, with standard
    errors positive and below 5% of the kernel's scale (the check has power)."""
    import jax
    import jax.numpy as jnp

    kw = apply_kwargs or {}

    @jax.jit
    def sample(keys):
        def one(k):
            _, params = net.init(k, x.shape)
            f = lambda p: net.apply(p, x, **kw)
            y = f(params)
            jac = jax.jacrev(lambda p: f(p)[:, 0])(params)
            flat = jnp.concatenate(
                [jnp.reshape(j, (x.shape[0], -1)) for j in jax.tree.leaves(jac)], axis=1
            )
            return y @ y.T / out, flat @ flat.T

        return jax.vmap(one)(keys)

    nngp_s, ntk_s = sample(jax.random.split(jax.random.key(key), draws))
    for name, samples, want in (("nngp", nngp_s, kernel.nngp), ("ntk", ntk_s, kernel.ntk)):
        samples, want = np.asarray(samples), np.asarray(want)
        se = samples.std(0, ddof=1) / np.sqrt(draws)
        z = np.abs(samples.mean(0) - want) / se
        assert z.max() < 4.5, (name, z.max())
        assert np.all(se > 0) and se.max() < 0.05 * np.abs(want).max(), name
