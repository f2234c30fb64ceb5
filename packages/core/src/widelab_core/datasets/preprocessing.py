"""Image preprocessing used by the kernel papers: channel standardisation and ZCA.

Both transforms are fitted on the training images only and then applied unchanged to
any further arrays (test images), as in Shankar et al. 2020 ("Neural Kernels Without
Tangents", ICML) and Lee et al. 2020 ("Finite Versus Infinite Neural Networks: an
Empirical Study", NeurIPS, Sec. 3.11).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train, test = rng.normal(size=(50, 4, 4, 3)), rng.normal(size=(5, 4, 4, 3))
    >>> tr, te = standardize_channels(train, test)
    >>> np.allclose(tr.mean(axis=(0, 1, 2)), 0), te.shape
    (True, (5, 4, 4, 3))
"""

from __future__ import annotations

import numpy as np

__all__ = ["standardize_channels", "zca_whiten"]


def _check(x_train, others, name: str) -> tuple[np.ndarray, list[np.ndarray]]:
    x = np.asarray(x_train)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(
            f"{name}: x_train must have shape (n, ..., channels) with n >= 2, got {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    rest = []
    for k, o in enumerate(others):
        o = np.asarray(o)
        if o.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"{name}: array {k + 1} after x_train has shape {o.shape}; its trailing "
                f"shape must equal x_train's {x.shape[1:]}"
            )
        rest.append(o.astype(x.dtype) if not np.issubdtype(o.dtype, np.floating) else o)
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: x_train contains NaN or infinity")
    return x, rest


def standardize_channels(x_train, *others, eps: float = 1e-8) -> tuple[np.ndarray, ...]:
    """Subtract each channel's training mean and divide by its training standard deviation.

    Statistics run over all images and positions of ``x_train`` (every axis but the
    last); the same shift and scale are applied to ``others``.

    Args:
        x_train: ``(n, ..., channels)`` training images.
        *others: more arrays of the same trailing shape (test images).
        eps: added to the standard deviation, so a constant channel maps to zero.

    Returns:
        The transformed ``(x_train, *others)`` as a tuple, in ``x_train``'s float type.

    Raises:
        ValueError: fewer than two training images, mismatched trailing shapes, NaN.
    """
    x, rest = _check(x_train, others, "standardize_channels")
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes, dtype=np.float64)
    std = x.std(axis=axes, dtype=np.float64)
    scale = 1.0 / (std + eps)
    return tuple(((a - mean) * scale).astype(x.dtype) for a in (x, *rest))


def zca_whiten(x_train, *others, reg: float = 0.1) -> tuple[np.ndarray, ...]:
    """Regularised ZCA whitening of flattened images, fitted on ``x_train``.

    With ``X`` the centred ``(n, d)`` training matrix, ``C = X^T X / n = U diag(l) U^T``
    and ``m = tr(C) / d`` (the mean eigenvalue), every image ``x`` (flattened) maps to
    ``(x - mu) W`` with

    ``W = U diag((l + reg * m) ** -1/2) U^T``,

    so the whitened training covariance is ``C (C + reg * m I)^-1``: the identity on
    directions whose variance is well above ``reg * m``, and shrunk towards zero on the
    others. ``reg = 0`` is plain ZCA (needs a full-rank ``C``). Lee et al. 2020, Sec.
    3.11 and App. I (regularisation relative to the mean eigenvalue); Shankar et al.
    2020 use the same transform for their Myrtle kernels.

    Args:
        x_train: ``(n, ...)`` training images; everything after the first axis is
            flattened into ``d`` features.
        *others: more arrays of the same trailing shape (test images).
        reg: regularisation strength ``>= 0`` relative to the mean eigenvalue.

    Returns:
        The whitened ``(x_train, *others)`` in their original shapes and float type.

    Raises:
        ValueError: a negative or non-finite ``reg``, ``reg = 0`` with a singular
            covariance, or the input errors of :func:`standardize_channels`.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(1).normal(size=(400, 3)) @ np.diag([1.0, 2.0, 5.0])
        >>> (w,) = zca_whiten(x, reg=0.0)
        >>> np.allclose(w.T @ w / len(w), np.eye(3))
        True
    """
    x, rest = _check(x_train, others, "zca_whiten")
    if not (isinstance(reg, int | float) and np.isfinite(reg) and reg >= 0):
        raise ValueError(f"zca_whiten: reg must be a finite number >= 0, got {reg!r}")
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    mu = flat.mean(axis=0)
    centred = flat - mu
    cov = centred.T @ centred / flat.shape[0]
    lam, u = np.linalg.eigh(cov)
    lam = np.clip(lam, 0.0, None)
    shift = reg * lam.mean()
    denom = lam + shift
    if np.any(denom <= 1e-12 * max(lam.max(), 1e-300)):
        raise ValueError(
            "zca_whiten: the training covariance is singular and reg=0; use reg > 0 "
            f"(it has {int(np.sum(lam <= 1e-12 * lam.max()))} zero eigenvalues among {len(lam)})"
        )
    w = (u * denom**-0.5) @ u.T
    return tuple(
        ((a.reshape(a.shape[0], -1) - mu) @ w).reshape(a.shape).astype(x.dtype) for a in (x, *rest)
    )
