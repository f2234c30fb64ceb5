"""Real image classification data for Bayesian studies: subsets with preprocessing.

* ``"digits"``: scikit-learn's bundled 8 x 8 handwritten digits (1,797 images, 10
  classes; UCI "Optical Recognition of Handwritten Digits"), read offline.
* ``"cifar10"``: the training images of CIFAR-10 (the published binary or Python-pickle
  batches), read with widelab-core's :func:`widelab_core.datasets.read_cifar10` (pixel
  values in ``[0, 1]``, each image flattened from its 32 x 32 x 3 NHWC layout).

Images are flattened to ``(N, features)``. Targets for the Gaussian likelihood are
centred one-hot rows (``one_hot - 1/k``, "regression on one-hot labels" as in Lee et al.
2018 and Matthews et al. 2018); the categorical likelihood takes the labels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DATASETS = ("digits", "cifar10")
PREPROCESS = ("standardize", "unit-norm", "scale")


class ImageSubset(NamedTuple):
    """A random training subset and a disjoint test subset.

    Attributes:
        x: ``(n, features)`` training inputs.
        labels: ``(n,)`` integer classes.
        x_test: ``(n_test, features)`` test inputs.
        labels_test: ``(n_test,)`` test classes.
        num_classes: number of classes ``k``.
    """

    x: np.ndarray
    labels: np.ndarray
    x_test: np.ndarray
    labels_test: np.ndarray
    num_classes: int


def one_hot_targets(labels, num_classes: int) -> np.ndarray:
    """Centred one-hot rows ``e_y - 1/k`` of shape ``(n, k)`` for Gaussian regression.

    Example:
        >>> one_hot_targets(np.array([1]), 2).tolist()
        [[-0.5, 0.5]]
    """
    labels = np.asarray(labels)
    return np.eye(num_classes)[labels] - 1.0 / num_classes


def _raw(name: str, path):
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return np.asarray(d.data, np.float64), np.asarray(d.target, np.int64), 10
    if path is None:
        raise ValueError("data 'cifar10' needs path=, the folder or file of CIFAR-10 batches")
    from widelab_core.datasets import read_cifar10

    out = read_cifar10(path, dtype=np.float64)
    x = np.asarray(out.x_train, np.float64).reshape(out.x_train.shape[0], -1)
    return x, np.asarray(out.y_train, np.int64), out.n_classes


def load_image_subset(
    name: str = "digits",
    n: int = 256,
    *,
    n_test: int = 32,
    seed: int = 0,
    preprocess: str = "standardize",
    path=None,
) -> ImageSubset:
    """A random subset of a real image data set, flattened and preprocessed.

    Args:
        name: ``"digits"`` (bundled with scikit-learn) or ``"cifar10"`` (needs ``path``).
        n: training points (``n + n_test`` must not exceed the data set).
        n_test: disjoint test points (e.g. for function-space projections).
        seed: NumPy seed of the random subset.
        preprocess: ``"standardize"`` (each feature to mean 0, variance 1 over the
            training subset; constant features stay 0), ``"unit-norm"`` (each input
            scaled to norm ``sqrt(features)``, so its mean square is 1, as in the NNGP
            literature) or ``"scale"`` (divide by the largest value, into ``[0, 1]``).
        path: CIFAR-10 files (for ``"cifar10"``).

    Returns:
        An :class:`ImageSubset`.

    Raises:
        ValueError: an unknown name or preprocessing, sizes out of range, no CIFAR
            ``path``, or a malformed CIFAR file (the reader names it).
        FileNotFoundError: the CIFAR folder or one of its batch files is missing.

    Example:
        >>> d = load_image_subset("digits", 20, n_test=5)
        >>> d.x.shape, d.x_test.shape, d.num_classes
        ((20, 64), (5, 64), 10)
    """
    if name not in DATASETS:
        raise ValueError(f"data must be one of {DATASETS}, got {name!r}")
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {PREPROCESS}, got {preprocess!r}")
    for arg, v, lo in (("n", n, 1), ("n_test", n_test, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{arg} must be an integer >= {lo}, got {v!r}")
    x, labels, k = _raw(name, path)
    if n + n_test > len(labels):
        raise ValueError(f"n + n_test = {n + n_test} exceeds the {len(labels)} points of {name!r}")
    idx = np.random.default_rng(seed).permutation(len(labels))[: n + n_test]
    x, labels = x[idx], labels[idx]
    if preprocess == "standardize":
        mean, sd = x[:n].mean(0), x[:n].std(0)
        x = np.where(sd > 0, (x - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    elif preprocess == "unit-norm":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x * np.sqrt(x.shape[1]) / np.where(norms > 0, norms, 1.0)
    else:
        x = x / max(float(np.abs(x).max()), 1e-12)
    return ImageSubset(x[:n], labels[:n], x[n:], labels[n:], k)
