"""``widelab kernels compute`` and ``widelab kernels regress``: kernels of image data sets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from widelab_core.cliargs import nonnegative_int, positive_float, positive_int

from .presets import PRESET_NAMES


def configure(sub) -> None:
    """Add the ``compute`` and ``regress`` subcommands to the ``kernels`` subparsers."""
    p = sub.add_parser(
        "compute",
        help="train x train and test x train kernels of an image data set into a folder "
        "(tiled, resumable, memory-mapped)",
    )
    p.add_argument("--net", required=True, help=f"preset network: {', '.join(PRESET_NAMES)}")
    _data_args(p)
    p.add_argument("--get", default="nngp,ntk", help="nngp, ntk or nngp,ntk")
    p.add_argument("--batch-size", type=positive_int, default=16, help="piece edge per device")
    p.add_argument(
        "--tile", type=positive_int, default=None, help="saved block edge (default 4 x batch)"
    )
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument(
        "--preprocess",
        choices=["none", "standardize", "zca"],
        default="standardize",
        help="fitted on the training images, applied to the test images",
    )
    p.add_argument(
        "--zca-reg", type=positive_float, default=0.1, help="ZCA strength (--preprocess zca)"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--log-every", type=positive_float, default=30.0, help="seconds between lines")
    p.add_argument("--coordinator", default=None, help="host:port of process 0 (multi-host)")
    p.add_argument("--num-processes", type=positive_int, default=None)
    p.add_argument("--process-id", type=nonnegative_int, default=None)

    r = sub.add_parser("regress", help="kernel ridge regression sweep from computed kernels")
    r.add_argument("--kernels", required=True, help="folder written by `kernels compute`")
    r.add_argument("--data", default=None, help="labels from here (default: stored labels)")
    r.add_argument("--format", choices=["cifar10", "cifar100", "npz"], default=None)
    r.add_argument("--reg", default=None, help="comma-separated regularisers (x mean diag)")


def _data_args(p) -> None:
    p.add_argument("--data", required=True, help="CIFAR folder or .npz file")
    p.add_argument("--format", choices=["cifar10", "cifar100", "npz"], default="cifar10")
    p.add_argument("--n-train", type=positive_int, default=None, help="first N training images")
    p.add_argument("--n-test", type=positive_int, default=None, help="first M test images")


def load_images(path: str, fmt: str):
    """(x_train, y_train, x_test, y_test) from a CIFAR folder or an .npz file."""
    from widelab_core.datasets import read_cifar10, read_cifar100

    if fmt == "cifar10":
        d = read_cifar10(path)
        return d.x_train, d.y_train, d.x_test, d.y_test
    if fmt == "cifar100":
        d = read_cifar100(path)
        return d.x_train, d.y_train, d.x_test, d.y_test
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"--data: {path} not found") from None
    except (ValueError, OSError) as e:
        raise ValueError(f"--data: {path} is not an .npz file ({e})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
    if missing:
        raise ValueError(f"--data: {path} lacks the arrays {missing}; it has {z.files}")
    return tuple(z[k] for k in ("x_train", "y_train", "x_test", "y_test"))


def _subset(n, have: int, name: str) -> int:
    if n is None:
        return have
    if n < 0 or n > have:
        raise ValueError(f"--{name} must be between 0 and {have} (images available), got {n}")
    return n


def run(args: argparse.Namespace) -> int:
    try:
        if args.kernels_cmd == "compute":
            return _compute(args)
        return _regress(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"widelab kernels {args.kernels_cmd}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"widelab kernels {args.kernels_cmd}: interrupted; finished blocks are kept, "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 130


def _compute(args) -> int:
    from widelab_core.datasets import standardize_channels, zca_whiten

    from .compute import compute_kernels

    if args.coordinator is not None:
        from widelab_core.devices import initialize_distributed

        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    get = tuple(g.strip() for g in args.get.split(",") if g.strip())
    x_tr, y_tr, x_te, y_te = load_images(args.data, args.format)
    n = _subset(args.n_train, len(x_tr), "n-train")
    m = _subset(args.n_test, len(x_te), "n-test")
    x_tr, y_tr, x_te, y_te = x_tr[:n], y_tr[:n], x_te[:m], y_te[:m]
    x_tr, x_te = np.asarray(x_tr, np.float64), np.asarray(x_te, np.float64)
    if args.preprocess == "standardize":
        x_tr, x_te = standardize_channels(x_tr, x_te)
    elif args.preprocess == "zca":
        x_tr, x_te = zca_whiten(x_tr, x_te, reg=args.zca_reg)
    extra = {"format": args.format, "preprocess": args.preprocess}
    if args.preprocess == "zca":
        extra["zca_reg"] = args.zca_reg
    out = Path(args.out)
    manifest = compute_kernels(
        args.net,
        x_tr,
        x_te,
        out,
        get=get,
        batch_size=args.batch_size,
        tile=args.tile,
        dtype=args.dtype,
        extra_settings=extra,
        progress=True,
        log_every=args.log_every,
    )
    import jax

    if jax.process_index() == 0:
        labels = out / "labels.npz"
        if not labels.exists():
            import io

            from widelab_core.command import atomic_write

            buf = io.BytesIO()
            np.savez(buf, y_train=np.asarray(y_tr), y_test=np.asarray(y_te))
            atomic_write(labels, buf.getvalue())
        s = manifest["settings"]
        print(
            f"wrote {', '.join(s['get'])} for {s['n_train']} train and {s['n_test']} test "
            f"images to {out}"
        )
    return 0


def _regress(args) -> int:
    from .compute import MANIFEST, load_kernels
    from .regress import DEFAULT_REGS, kernel_regression

    kdir = Path(args.kernels)
    kernels = load_kernels(kdir)
    settings = json.loads((kdir / MANIFEST).read_text())["settings"]
    n, m = settings["n_train"], settings["n_test"]
    if m == 0:
        raise ValueError(f"--kernels: {kdir} has no test kernels (computed with --n-test 0)")
    if args.data is not None:
        fmt = args.format or settings.get("format", "cifar10")
        _, y_tr, _, y_te = load_images(args.data, fmt)
        if len(y_tr) < n or len(y_te) < m:
            raise ValueError(f"--data: {args.data} has fewer labels than the {n}/{m} kernel rows")
        y_tr, y_te = y_tr[:n], y_te[:m]
    else:
        z = np.load(kdir / "labels.npz")
        y_tr, y_te = z["y_train"], z["y_test"]
    if args.reg is None:
        regs = list(DEFAULT_REGS)
    else:
        try:
            regs = [float(v) for v in args.reg.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--reg must be comma-separated numbers, got {args.reg!r}") from None
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    print(f"{'kernel':6s} {'reg':>9s} {'accuracy':>9s} {'mse':>9s}")
    for g in settings["get"]:
        rows = kernel_regression(
            kernels[f"{g}_train_train"],
            kernels[f"{g}_test_train"],
            y_tr,
            y_te,
            regs,
            n_classes=n_classes,
        )
        for row in rows:
            print(f"{g:6s} {row['reg']:9.2e} {row['accuracy']:9.4f} {row['mse']:9.5f}")
    return 0
