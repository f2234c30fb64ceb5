"""The approximate-inference sub-subcommands of ``widelab bayes``: ``sw``,
``gaussian-dropout``, ``concrete-dropout`` and ``successor`` (each sets ``func``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from widelab_core.cliargs import int_list, nonnegative_int, positive_float, positive_int


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
