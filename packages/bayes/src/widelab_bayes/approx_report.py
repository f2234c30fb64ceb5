"""The approximate-inference part of ``widelab bayes``: sub-subcommands and the report section.

``configure(subparsers)`` adds ``sw``, ``gaussian-dropout``, ``concrete-dropout`` and
``successor`` (each sets ``func``); ``report(ctx)`` runs the approximate-inference
studies (Concrete dropout, variational Gaussian dropout and QKL, sliced Wasserstein,
Successor Uncertainties) and returns a :class:`ReportSection`. The command lives in
:mod:`.approx_cli`, the shared studies in :mod:`.approx_studies` and the figures in
:mod:`.approx_figures`.
"""

from __future__ import annotations

import math
import time

import numpy as np
from widelab_core.command import ReportContext, ReportSection

from .approx_cli import configure
from .approx_figures import (
    _dropout_figure,
    _kl_figure,
    _successor_figure,
    _sw_figure,
    add_figure,
)
from .approx_studies import _episodes_cell, sw_variance_study

__all__ = ["configure", "report", "sw_variance_study"]


def report(ctx: ReportContext) -> ReportSection:
    """The approximate-inference section of ``widelab report``.

    Quick mode keeps to about 20 s on 2 CPU cores (JIT included): small networks and
    problem sizes, few seeds.

    Args:
        ctx: the report context (``quick``, ``seed``, progress bars).

    Returns:
        The section with figures, tables and headline metrics.
    """
    import jax
    import jax.numpy as jnp

    from .dropout import concrete_dropout_study
    from .gaussian_dropout import (
        additive_spurious_minimum,
        gaussian_dropout_kl,
        log_uniform_posterior_mass,
        molchanov_kl,
        qkl_degenerate_gaussian,
        qkl_optimal_degenerate,
    )
    from .successor import scaling_study

    quick = ctx.quick
    sec = ReportSection(
        "Approximate inference: dropout, sliced Wasserstein, successor uncertainties"
    )
    bar = ctx.bar(total=4, desc="bayes approx")

    # Sliced Wasserstein ---------------------------------------------------------------
    t0 = time.perf_counter()
    ls = (10,) if quick else (5, 10, 20, 50, 100)
    rows = sw_variance_study(10, ls, n_samples=200 if quick else 1000, n_keys=100, seed=ctx.seed)
    sec.text(
        "Sliced Wasserstein (Rowland et al. 2019): standard deviation of the unbiased SW_2^2 "
        "estimator over 100 direction draws in d = 10, i.i.d. vs orthogonal (Haar blocks) "
        "directions at equal projection counts."
    )
    sec.table(
        ["projections", "std iid", "std orthogonal", "variance ratio", "mean iid", "mean orth"],
        [(L, si, so, (si / so) ** 2, mi, mo) for L, si, so, mi, mo in rows],
    )
    if len(rows) > 1:
        add_figure(sec, _sw_figure, rows, caption="Estimator std against projection count (d = 10)")
    l10 = next(r for r in rows if r[0] == 10)
    sec.metric(
        "SW orthogonal variance reduction (L=10, d=10)",
        float((l10[1] / l10[2]) ** 2),
        unit="1",
        better="higher",
    )
    bar.update()

    # Gaussian dropout ------------------------------------------------------------------
    with jax.enable_x64(True):
        la = np.linspace(-8, 8, 161)
        exact = np.asarray(gaussian_dropout_kl(jnp.asarray(la)))
        approx = np.asarray(molchanov_kl(jnp.asarray(la)))
        sec.text(
            "Variational Gaussian dropout (Hron, Matthews, Ghahramani 2017/2018): the exact KL "
            "from N(theta, alpha theta^2) to the log-uniform prior, 1/2 E log(alpha^-1/2 + xi)^2 "
            "up to its infinite constant, against the sigmoid fit of Molchanov et al. (2017)."
        )
        add_figure(sec, _kl_figure, la, exact, approx, caption="Exact KL vs sigmoid approximation")
        sec.metric(
            "max |sigmoid KL - exact KL|",
            float(np.max(np.abs(approx - exact))),
            unit="nats",
            better="lower",
        )
        imp = log_uniform_posterior_mass(lambda w: math.exp(-0.5 * (w - 1.0) ** 2))
        sec.table(
            ["delta", "Z(delta) = int_{|w|>delta} L(w)/|w| dw"],
            list(zip(imp.deltas, imp.masses)),
            caption=(
                "Improper posterior under the log-uniform prior (one weight, Gaussian "
                f"likelihood): Z grows like 2 L(0) log(1/delta); fitted slope {imp.slope:.4f}, "
                f"predicted {imp.predicted_slope:.4f}."
            ),
        )
        sp = additive_spurious_minimum(steps=1500 if quick else 5000, lr=0.02 if quick else 0.01)
        sec.table(
            ["parameterisation", "final theta_1 theta_2", "objective"],
            [
                (
                    "multiplicative (theta, log alpha)",
                    sp.multiplicative[0][0] * sp.multiplicative[0][1],
                    sp.multiplicative[1],
                ),
                (
                    "additive (theta, log sigma)",
                    sp.additive[0][0] * sp.additive[0][1],
                    sp.additive[1],
                ),
            ],
            caption=(
                "Same start q on y = w1 w2 x: the additive parameterisation stops at theta = 0, "
                "a local minimum (Hessian eigenvalues in theta "
                f"{np.array2string(sp.additive_hessian_eigs, precision=3)}) absent from the "
                "multiplicative one, where theta = 0 is a saddle."
            ),
        )
        rng = np.random.default_rng(ctx.seed)
        a = rng.standard_normal((6, 6))
        cov = a @ a.T / 6 + 0.1 * np.eye(6)
        opt = qkl_optimal_degenerate(jnp.zeros(6), jnp.asarray(cov), 2)
        rand_vals = []
        for _ in range(20):
            u, _ = np.linalg.qr(rng.standard_normal((6, 2)))
            lam = 1.0 / np.diag(u.T @ np.linalg.solve(cov, u))
            rand_vals.append(
                float(
                    qkl_degenerate_gaussian(
                        jnp.zeros(6),
                        jnp.asarray(u),
                        jnp.asarray(lam),
                        jnp.zeros(6),
                        jnp.asarray(cov),
                    )
                )
            )
        sec.table(
            ["rank-2 approximation of N(0, S), d = 6", "QKL"],
            [
                ("principal components (closed-form optimum)", float(opt.value)),
                ("best of 20 random subspaces", min(rand_vals)),
                ("median of 20 random subspaces", float(np.median(rand_vals))),
            ],
        )
    bar.update()

    # Concrete dropout ------------------------------------------------------------------
    t1 = time.perf_counter()
    sizes = (10, 100, 1000) if quick else (10, 100, 1000, 10000)
    study = concrete_dropout_study(
        sizes,
        key=jax.random.key(ctx.seed),
        hidden=16 if quick else 64,
        depth=2 if quick else 3,
        steps=1500 if quick else 5000,
        batch_size=64 if quick else 128,
    )
    sec.text(
        "Concrete dropout (Gal, Hron, Kendall 2017): heteroscedastic MLP on y = 2x + 8 + N(0,1) "
        "with a learned dropout probability before every weight layer; p falls as N grows "
        "while the first layer (one input unit) keeps a small p."
        + (" Quick mode: 2 hidden layers of width 16, 1500 Adam steps." if quick else "")
    )
    add_figure(
        sec, _dropout_figure, study, caption="Learned dropout probability against dataset size"
    )
    sec.table(
        ["N"]
        + [f"p layer {j + 1}" for j in range(study.probabilities.shape[1])]
        + ["noise std at x=0"],
        [
            [int(n), *map(float, p), float(s)]
            for n, p, s in zip(study.sizes, study.probabilities, study.noise_std)
        ],
    )
    sec.metric(
        "concrete dropout mean p at the smallest and largest N",
        [float(study.probabilities[0, 1:].mean()), float(study.probabilities[-1, 1:].mean())],
        unit="1",
        better="neither",
    )
    bar.update()

    # Successor uncertainties -----------------------------------------------------------
    t2 = time.perf_counter()
    su = scaling_study(
        (4, 8, 12, 16) if quick else (4, 8, 16, 24, 32),
        env="tree",
        n_seeds=3 if quick else 10,
        max_episodes=1000 if quick else 3000,
        epsilon_max_size=8 if quick else 10,
        seed=ctx.seed,
    )
    sec.text(
        "Successor Uncertainties (Janz, Hron et al. 2019) on the binary tree MDP: median episodes "
        "to the first rewarded episode (every episode counted) against depth, with uniform "
        "exploration's analytic median ceil(log 1/2 / log(1 - 2^-L)) and simulated "
        "epsilon-greedy Q-learning (epsilon = 0.1)."
    )
    add_figure(
        sec, _successor_figure, su, "tree", caption="Episodes to solve against tree depth (log-log)"
    )
    sec.table(
        ["depth", "SU median", "epsilon-greedy median", "uniform median (analytic)"],
        [
            (int(s), _episodes_cell(a), _episodes_cell(b), float(c))
            for s, a, b, c in zip(
                su.sizes,
                su.medians["successor uncertainties"],
                su.medians["epsilon-greedy"],
                su.uniform_median,
            )
        ],
        caption=(
            "'not run': epsilon-greedy is simulated only up to depth "
            f"{8 if quick else 10} (beyond it the episode cap would be reached); "
            "'over cap': most seeds did not solve the tree within the episode cap."
        ),
    )
    sec.metric(
        "successor uncertainties scaling exponent (tree)", su.exponent, unit="1", better="lower"
    )
    if not quick:
        ds = scaling_study(
            (4, 6, 8, 10, 12),
            env="deepsea",
            n_seeds=5,
            max_episodes=3000,
            epsilon_max_size=6,
            seed=ctx.seed,
        )
        add_figure(
            sec, _successor_figure, ds, "deepsea", caption="Episodes to solve against Deep Sea size"
        )
        sec.metric(
            "successor uncertainties scaling exponent (Deep Sea)",
            ds.exponent,
            unit="1",
            better="lower",
        )
        from .successor import BinaryTreeMDP, NeuralSU, run_episodes

        neural_rows = []
        for depth in (4, 8):
            runs = []
            for sd in range(3):
                env = BinaryTreeMDP(depth, seed=sd)
                n = run_episodes(NeuralSU(env, seed=sd), env, 1000)
                runs.append(float("inf") if n is None else n)
            neural_rows.append((depth, *runs))
        sec.table(
            ["depth", "seed 0", "seed 1", "seed 2"],
            neural_rows,
            caption="Successor Uncertainties with an MLP (optax Adam), episodes to first success",
        )
    bar.update()
    bar.close()
    t3 = time.perf_counter()
    sec.text(
        f"Timings: sliced Wasserstein + Gaussian dropout {t1 - t0:.1f} s, concrete dropout "
        f"{t2 - t1:.1f} s, successor uncertainties {t3 - t2:.1f} s."
    )
    return sec
