"""``widelab bayes`` options and studies on real image data (digits, CIFAR-10).

``sample --data digits|cifar10 --path ...`` reads a real data set (one output per class,
centred one-hot targets, or class labels with ``--likelihood categorical``), and three
studies: ``image-ess-width`` (ESS per gradient and per second against width, FCN and
ResNet), ``kl-width`` (KL between prior and repriorised posterior against width) and
``image-mmd`` (MMD^2 to the NNGP against width and depth on real inputs).
"""

from __future__ import annotations

import argparse

import numpy as np
from widelab_core.cliargs import int_list, nonnegative_int, positive_float, positive_int

from .data import DATASETS, PREPROCESS, load_image_subset, one_hot_targets
from .networks import NETWORKS
from .studies import HEADER, METHODS


def add_data_options(p: argparse.ArgumentParser) -> None:
    """``--path``, ``--n-test``, ``--preprocess``, ``--network`` and ``--likelihood``."""
    p.add_argument("--path", default=None, help="CIFAR-10 files (with --data cifar10)")
    p.add_argument(
        "--n-test", type=positive_int, default=16, help="test images for the projections"
    )
    p.add_argument("--preprocess", choices=PREPROCESS, default="unit-norm")
    p.add_argument("--network", choices=list(NETWORKS), default="fcn")
    p.add_argument(
        "--likelihood",
        choices=["gaussian", "categorical"],
        default="gaussian",
        help="categorical (softmax) works with the plain-* methods only",
    )


def image_data(args) -> tuple:
    """``(x, y, x_test)`` for ``--data digits|cifar10``: centred one-hot targets, or
    one-hot labels for the categorical likelihood."""
    d = load_image_subset(
        args.data, args.n_data, n_test=args.n_test, preprocess=args.preprocess, path=args.path
    )
    if args.likelihood == "categorical":
        return d.x, np.eye(d.num_classes)[d.labels], d.x_test
    return d.x, one_hot_targets(d.labels, d.num_classes), d.x_test


def _table(header, rows):
    from .cli import _format_table

    return _format_table(header, rows)


def _run_image_ess(args) -> int:
    import jax

    from .scale_studies import image_ess_vs_width

    runs = image_ess_vs_width(
        jax.random.key(args.seed),
        args.widths,
        args.methods.split(","),
        args.networks.split(","),
        data=args.data,
        path=args.path,
        n_data=args.n_data,
        n_test=args.n_test,
        depth=args.depth,
        noise_std=args.noise,
        preprocess=args.preprocess,
        chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
    )
    print(_table(["network"] + HEADER, [[net] + r.row() for net, r in runs]))
    return 0


def _run_kl(args) -> int:
    import jax

    from .scale_studies import kl_slope, kl_vs_width

    pts = kl_vs_width(
        jax.random.key(args.seed),
        args.widths,
        network=args.network,
        depth=args.depth,
        n_data=args.n_data,
        noise_std=args.noise,
        num_draws=args.draws,
        data=args.data,
        path=args.path,
    )
    print(
        _table(
            ["width", "KL", "s.e.", "width x KL"],
            [[p.width, p.kl, p.se, p.width * p.kl] for p in pts],
        )
    )
    if len(pts) > 1:
        print(f"slope of log KL against log width: {kl_slope(pts):.3f} (1/width: -1)")
    return 0


def _run_image_mmd(args) -> int:
    import jax

    from .scale_studies import image_mmd_vs_width

    rows = image_mmd_vs_width(
        jax.random.key(args.seed),
        args.widths,
        args.depths,
        n_inputs=args.n_inputs,
        num_samples=args.samples,
        repeats=args.repeats,
        data=args.data,
        path=args.path,
    )
    print(_table(["depth", "width", "MMD^2", "s.e."], [list(r) for r in rows]))
    return 0


def configure(sub) -> None:
    """Add the image-data studies to the ``widelab bayes`` subparsers ``sub``."""
    p = sub.add_parser("image-ess-width", help="ESS/grad and ESS/s vs width on real images")
    p.add_argument("--data", choices=DATASETS, default="digits")
    p.add_argument("--widths", type=int_list(positive_int), default=[64, 256, 1024])
    p.add_argument(
        "--methods",
        default="collapsed-ghmc,repriorised-ghmc,plain-ghmc,plain-nuts",
        help=f"comma-separated, from {', '.join(METHODS)}",
    )
    p.add_argument("--networks", default="fcn,resnet", help="comma-separated: fcn, resnet")
    p.add_argument("--n-data", type=positive_int, default=256)
    p.add_argument("--depth", type=positive_int, default=1)
    p.add_argument("--noise", type=positive_float, default=0.3)
    p.add_argument("--chains", type=positive_int, default=4)
    p.add_argument("--warmup", type=nonnegative_int, default=300)
    p.add_argument("--samples", type=positive_int, default=500)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    add_data_options(p)
    p.set_defaults(func=_run_image_ess)

    p = sub.add_parser("kl-width", help="KL(prior || repriorised posterior) against width")
    p.add_argument("--data", choices=DATASETS, default="digits")
    p.add_argument("--path", default=None)
    p.add_argument("--widths", type=int_list(positive_int), default=[16, 64, 256, 1024])
    p.add_argument("--network", choices=list(NETWORKS), default="fcn")
    p.add_argument("--depth", type=positive_int, default=1)
    p.add_argument("--n-data", type=positive_int, default=8)
    p.add_argument("--noise", type=positive_float, default=0.3)
    p.add_argument("--draws", type=positive_int, default=2000, help="prior draws per width")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=_run_kl)

    p = sub.add_parser("image-mmd", help="MMD^2 to the NNGP vs width and depth on real inputs")
    p.add_argument("--data", choices=DATASETS, default="digits")
    p.add_argument("--path", default=None)
    p.add_argument("--widths", type=int_list(positive_int), default=[4, 16, 64, 256])
    p.add_argument("--depths", type=int_list(positive_int), default=[1, 2, 3])
    p.add_argument("--n-inputs", type=positive_int, default=5)
    p.add_argument("--samples", type=positive_int, default=300)
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=_run_image_mmd)
