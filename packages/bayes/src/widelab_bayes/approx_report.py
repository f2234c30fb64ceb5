"""The approximate-inference part of ``widelab bayes``: sub-subcommands and the report section.

``configure(subparsers)`` adds ``sw``, ``gaussian-dropout``, ``concrete-dropout`` and
``successor`` (each sets ``func``); ``report(ctx)`` runs the approximate-inference
studies (Concrete dropout, variational Gaussian dropout and QKL, sliced Wasserstein,
Successor Uncertainties) and returns a :class:`ReportSection`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from widelab_core.cliargs import (
    int_list,
    nonnegative_int,
    positive_float,
    positive_int,
)
from widelab_core.command import ReportContext, ReportSection

# --------------------------------------------------------------------------------------
# Studies shared by the report and the command
# --------------------------------------------------------------------------------------


def sw_variance_study(dim: int, n_projections_list, *, n_samples: int, n_keys: int, seed: int):
    """Std of the SW_2^2 estimator over direction draws, i.i.d. vs orthogonal.

    Rowland et al. (2019), Section 3: both estimators are unbiased; orthogonal blocks
    reduce the variance. ``x`` is standard normal and ``y`` a skewed cloud.

    Args:
        dim: dimension.
        n_projections_list: projection counts ``L`` to compare.
        n_samples: points per measure.
        n_keys: independent direction draws per estimator.
        seed: seed of data and directions.

    Returns:
        A list of ``(L, std_iid, std_orth, mean_iid, mean_orth)``.
    """
    import jax

    from .sliced_wasserstein import sliced_wasserstein

    kx, ky, kd = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (n_samples, dim))
    y = 0.5 * jax.random.normal(ky, (n_samples, dim)) ** 2  # a skewed, anisotropic cloud
    keys = jax.random.split(kd, n_keys)
    rows = []
    for L in n_projections_list:
        res = {}
        for kind in ("iid", "orthogonal"):
            # data passed as arguments (not closed over) so XLA does not constant-fold them
            f = jax.jit(
                jax.vmap(
                    lambda k, a, b, L=L, kind=kind: sliced_wasserstein(
                        a, b, key=k, n_projections=L, directions=kind, root=False
                    ),
                    in_axes=(0, None, None),
                )
            )
            v = np.asarray(f(keys, x, y), np.float64)
            res[kind] = (v.std(ddof=1), v.mean())
        rows.append((L, res["iid"][0], res["orthogonal"][0], res["iid"][1], res["orthogonal"][1]))
    return rows


def _sw_figure(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ls = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.loglog(ls, [r[1] for r in rows], "o-", label="i.i.d. directions")
    ax.loglog(ls, [r[2] for r in rows], "s-", label="orthogonal directions")
    ax.set_xlabel("projections L")
    ax.set_ylabel("std of SW_2^2 estimate")
    ax.legend()
    fig.tight_layout()
    return fig


def _kl_figure(log_alpha, exact, approx):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    a1.plot(log_alpha, exact, label="exact (series / 2F2)")
    a1.plot(log_alpha, approx, "--", label="sigmoid fit (Molchanov et al.)")
    a1.set_xlabel("log alpha")
    a1.set_ylabel("KL + const")
    a1.legend()
    a2.plot(log_alpha, approx - exact)
    a2.set_xlabel("log alpha")
    a2.set_ylabel("approx - exact")
    fig.tight_layout()
    return fig


def _dropout_figure(study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for j in range(study.probabilities.shape[1]):
        ax.plot(study.sizes, study.probabilities[:, j], "o-", label=f"dropout layer {j + 1}")
    ax.set_xscale("log")
    ax.set_xlabel("dataset size N")
    ax.set_ylabel("learned p")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _successor_figure(study, env):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .successor import fit_power_law

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    s = study.sizes
    su = study.medians["successor uncertainties"]
    ax.plot(s, su, "o-", label=f"successor uncertainties (slope {study.exponent:.2f})")
    a, b = fit_power_law(s, su)
    grid = np.linspace(s.min(), s.max(), 50)
    ax.plot(grid, a * grid**b, ":", color="gray")
    eg = study.medians["epsilon-greedy"]
    ok = np.isfinite(eg)
    if ok.any():
        ax.plot(s[ok], eg[ok], "s-", label="epsilon-greedy (simulated)")
    ax.plot(s, study.uniform_median, "^--", label="uniform (analytic median)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("depth L" if env == "tree" else "size N")
    ax.set_ylabel("median episodes to first success")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


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
        sec.figure(_sw_figure(rows), "Estimator std against projection count (d = 10)")
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
        sec.figure(_kl_figure(la, exact, approx), "Exact KL vs sigmoid approximation")
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
    sec.figure(_dropout_figure(study), "Learned dropout probability against dataset size")
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
    sec.figure(_successor_figure(su, "tree"), "Episodes to solve against tree depth (log-log)")
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
        sec.figure(_successor_figure(ds, "deepsea"), "Episodes to solve against Deep Sea size")
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


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _load_samples(path: str) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"error: {p}: no such file")
    try:
        arr = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, delimiter=",", ndmin=2)
    except ValueError as e:
        raise SystemExit(f"error: {p}: cannot read samples ({e})") from None
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise SystemExit(f"error: {p}: expected a non-empty (n, d) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise SystemExit(f"error: {p}: non-finite value in row {bad + 1}")
    return arr


def _run_sw(args) -> int:
    import jax

    from .sliced_wasserstein import projected_wasserstein, sliced_wasserstein

    if args.x or args.y:
        if not (args.x and args.y):
            raise SystemExit("error: give both --x and --y")
        x, y = _load_samples(args.x), _load_samples(args.y)
    else:
        kx, ky = jax.random.split(jax.random.key(args.seed))
        x = np.asarray(jax.random.normal(kx, (args.n, args.dim)))
        y = np.asarray(1.0 + 0.5 * jax.random.normal(ky, (args.n, args.dim)))
    try:
        key = jax.random.key(args.seed + 1)
        sw = sliced_wasserstein(
            x, y, key=key, n_projections=args.projections, p=args.p, directions=args.directions
        )
        print(f"SW_{args.p:g} ({args.directions}, {args.projections} projections): {float(sw):.6g}")
        if x.shape[0] == y.shape[0]:
            pw = projected_wasserstein(
                x, y, key=key, n_projections=args.projections, p=args.p, directions=args.directions
            )
            print(f"PW_{args.p:g}: {float(pw):.6g}")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    return 0


def _run_gaussian_dropout(args) -> int:
    import jax

    from .gaussian_dropout import additive_spurious_minimum, gaussian_dropout_kl, molchanov_kl

    with jax.enable_x64(True):
        print(f"{'log alpha':>10} {'exact KL':>12} {'sigmoid KL':>12}")
        for la in np.linspace(-6, 6, 13):
            print(
                f"{la:10.2f} {float(gaussian_dropout_kl(la)):12.6f} {float(molchanov_kl(la)):12.6f}"
            )
        sp = additive_spurious_minimum(steps=args.steps)
        print(
            f"multiplicative: theta={sp.multiplicative[0][:2]}, objective {sp.multiplicative[1]:.4f}"
        )
        print(f"additive:       theta={sp.additive[0][:2]}, objective {sp.additive[1]:.4f}")
    return 0


def _run_concrete_dropout(args) -> int:
    import jax

    from .dropout import concrete_dropout_study

    try:
        st = concrete_dropout_study(
            args.sizes, key=jax.random.key(args.seed), hidden=args.hidden, steps=args.steps
        )
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    for n, p, s in zip(st.sizes, st.probabilities, st.noise_std):
        print(f"N={int(n):>6}  p per layer: {np.array2string(p, precision=3)}  noise std {s:.3f}")
    return 0


def _run_successor(args) -> int:
    from .successor import NeuralSU, make_env, run_episodes, scaling_study

    if args.agent == "neural":
        for size in args.sizes:
            res = []
            for sd in range(args.seeds):
                env = make_env(args.env, size, seed=sd)
                res.append(run_episodes(NeuralSU(env, seed=sd), env, args.max_episodes))
            print(f"size {size}: episodes to first success per seed {res}")
        return 0
    try:
        st = scaling_study(
            args.sizes,
            env=args.env,
            n_seeds=args.seeds,
            max_episodes=args.max_episodes,
            epsilon_max_size=args.epsilon_max_size,
            seed=args.seed,
        )
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    for i, s in enumerate(st.sizes):
        print(
            f"size {int(s):>3}: SU median {st.medians['successor uncertainties'][i]:>8} "
            f"eps-greedy {st.medians['epsilon-greedy'][i]:>8} uniform {int(st.uniform_median[i])}"
        )
    print(f"fitted exponent (SU): {st.exponent:.3f}")
    return 0


def configure(subparsers) -> None:
    """Add the approximate-inference ``widelab bayes`` sub-subcommands (each sets ``func``).

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.
    """
    p = subparsers.add_parser("sw", help="sliced / projected Wasserstein between two sample sets")
    p.add_argument("--x", help="samples of the first measure (.npy or comma-separated text)")
    p.add_argument("--y", help="samples of the second measure")
    p.add_argument("--n", type=positive_int, default=500, help="synthetic sample size (no files)")
    p.add_argument("--dim", type=positive_int, default=10)
    p.add_argument("--projections", type=positive_int, default=50)
    p.add_argument("--p", type=positive_float, default=2.0)
    p.add_argument("--directions", choices=["iid", "orthogonal"], default="orthogonal")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=_run_sw)

    p = subparsers.add_parser("gaussian-dropout", help="exact KL vs sigmoid fit; spurious minima")
    p.add_argument("--steps", type=positive_int, default=3000)
    p.set_defaults(func=_run_gaussian_dropout)

    p = subparsers.add_parser("concrete-dropout", help="learned dropout p against dataset size")
    p.add_argument("--sizes", type=int_list(positive_int), default=[10, 100, 1000, 10000])
    p.add_argument("--hidden", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, default=3000)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=_run_concrete_dropout)

    p = subparsers.add_parser(
        "successor", help="successor uncertainties: episodes to solve vs size"
    )
    p.add_argument("--env", choices=["tree", "deepsea"], default="tree")
    p.add_argument("--agent", choices=["tabular", "neural"], default="tabular")
    p.add_argument("--sizes", type=int_list(positive_int), default=[4, 8, 12, 16])
    p.add_argument("--seeds", type=positive_int, default=5)
    p.add_argument("--max-episodes", type=positive_int, default=2000)
    p.add_argument(
        "--epsilon-max-size",
        type=nonnegative_int,
        default=8,
        help="simulate epsilon-greedy up to this size",
    )
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=_run_successor)


def _episodes_cell(v):
    """A median-episodes cell: the number, 'not run' (nan) or 'over cap' (inf)."""
    v = float(v)
    if np.isnan(v):
        return "not run"
    return "over cap" if np.isinf(v) else v
