"""Kernel ridge (GP posterior mean) regression on one-hot labels from stored kernels.

For a training kernel ``K`` (``n x n``), a test-by-train kernel ``K*`` and centred
one-hot targets ``Y`` (``1 - 1/C`` for the true class, ``-1/C`` elsewhere), the
prediction with diagonal regulariser ``lambda`` is

``f* = K* (K + lambda * mean(diag K) * I)^-1 Y``,

the NNGP posterior mean (Rasmussen & Williams 2006, Eq. 2.25; Lee et al. 2018,
"Deep Neural Networks as Gaussian Processes", Eq. 8) and, for the NTK, the mean of the
infinitely wide network trained to convergence on the squared loss (Jacot et al. 2018;
Lee et al. 2019, Eq. 16 at t = infinity). One eigendecomposition ``K = U diag(s) U^T``
serves the whole sweep: ``f* = K* U diag(1 / (s + lambda m)) U^T Y``. The test kernel is
read from its memory map in blocks of rows, so only ``K`` is held in memory.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(30, 5))
    >>> k, ks = f @ f.T, f[:4] @ f.T
    >>> rows = kernel_regression(k, ks, rng.integers(0, 3, 30), np.zeros(4, int), [1e-3])
    >>> sorted(rows[0])
    ['accuracy', 'mse', 'reg']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_REGS", "centred_one_hot", "kernel_regression"]

#: Regularisers (relative to the mean diagonal of the training kernel) swept by default.
DEFAULT_REGS = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def centred_one_hot(labels, n_classes: int) -> np.ndarray:
    """Targets ``1 - 1/C`` for the true class and ``-1/C`` for the others (float64).

    Args:
        labels: integer labels in ``[0, n_classes)``.
        n_classes: number of classes ``C``.

    Returns:
        ``(len(labels), n_classes)`` array whose rows sum to zero.

    Raises:
        ValueError: a label outside ``[0, n_classes)``.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= n_classes)):
        raise ValueError(
            f"centred_one_hot: labels must be a flat array of integers in [0, {n_classes}), "
            f"got shape {y.shape}" + (f" with range [{y.min()}, {y.max()}]" if y.size else "")
        )
    out = np.full((y.size, n_classes), -1.0 / n_classes)
    out[np.arange(y.size), y] += 1.0
    return out


def kernel_regression(
    k_train,
    k_test,
    y_train,
    y_test,
    regs: Sequence[float] = DEFAULT_REGS,
    *,
    n_classes: int | None = None,
    rows_per_block: int = 4096,
) -> list[dict]:
    """Test accuracy and mean squared error of kernel ridge regression for each regulariser.

    Args:
        k_train: ``(n, n)`` symmetric training kernel (array or memory map).
        k_test: ``(m, n)`` test-by-train kernel (read ``rows_per_block`` rows at a time).
        y_train: ``(n,)`` integer labels.
        y_test: ``(m,)`` integer labels.
        regs: diagonal regularisers ``lambda >= 0``, relative to ``mean(diag K)``.
        n_classes: number of classes; default ``max(labels) + 1``.
        rows_per_block: test rows per block read from ``k_test``.

    Returns:
        One dict per regulariser: ``reg``, ``accuracy`` (fraction of test images whose
        largest prediction is the true class) and ``mse`` (squared error averaged over
        test images and classes, against the centred one-hot targets).

    Raises:
        ValueError: shapes that do not fit, a negative regulariser, non-finite kernels.
    """
    k_train = np.asarray(k_train)
    n = k_train.shape[0]
    if k_train.shape != (n, n) or np.shape(k_test)[1:] != (n,):
        raise ValueError(
            f"kernel_regression: k_train must be (n, n) and k_test (m, n); got "
            f"{k_train.shape} and {np.shape(k_test)}"
        )
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if y_train.shape != (n,) or y_test.shape != (np.shape(k_test)[0],):
        raise ValueError(
            f"kernel_regression: {n} training and {np.shape(k_test)[0]} test kernel rows but "
            f"{y_train.shape[0]} and {y_test.shape[0]} labels"
        )
    regs = [float(r) for r in regs]
    if any(not np.isfinite(r) or r < 0 for r in regs) or not regs:
        raise ValueError(f"kernel_regression: regs must be finite and >= 0, got {regs}")
    c = n_classes or int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    targets = centred_one_hot(y_train, c)
    kt = k_train.astype(np.float64)
    if not np.isfinite(kt).all():
        raise ValueError("kernel_regression: the training kernel has NaN or infinite entries")
    s, u = np.linalg.eigh(kt)
    scale = float(np.mean(np.diag(kt)))
    proj = u.T @ targets  # (n, C)
    alphas = np.stack([u @ (proj / (s + r * scale)[:, None]) for r in regs])  # (R, n, C)
    sq = np.zeros(len(regs))
    hits = np.zeros(len(regs))
    m = np.shape(k_test)[0]
    for r0 in range(0, m, rows_per_block):
        block = np.asarray(k_test[r0 : r0 + rows_per_block], np.float64)
        truth = y_test[r0 : r0 + rows_per_block]
        want = centred_one_hot(truth, c)
        pred = np.einsum("mn,rnc->rmc", block, alphas)
        sq += ((pred - want) ** 2).sum(axis=(1, 2))
        hits += (pred.argmax(axis=2) == truth).sum(axis=1)
    denom = max(m, 1)
    return [
        {"reg": r, "accuracy": float(h / denom), "mse": float(q / (denom * c))}
        for r, h, q in zip(regs, hits, sq)
    ]
