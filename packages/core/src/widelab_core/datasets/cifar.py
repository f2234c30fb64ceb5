"""Readers for CIFAR-10 and CIFAR-100 in their published formats.

Both data sets ship in two forms (Krizhevsky 2009, "Learning Multiple Layers of
Features from Tiny Images", and its web page):

* the *Python version*: pickled dicts, one per batch (CIFAR-10: ``data_batch_1`` ..
  ``data_batch_5`` and ``test_batch``; CIFAR-100: ``train`` and ``test``), with
  ``b"data"``, a ``uint8`` array of shape ``(N, 3072)`` holding each image as its red,
  green and blue 32 x 32 planes in row-major order, and the labels (CIFAR-10:
  ``b"labels"``; CIFAR-100: ``b"fine_labels"`` and ``b"coarse_labels"``);
* the *binary version*: fixed-length records of 1 label byte (CIFAR-10) or 2 (coarse,
  then fine; CIFAR-100) followed by the same 3072 image bytes (CIFAR-10:
  ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``; CIFAR-100:
  ``train.bin`` and ``test.bin``).

The pickles are read with an unpickler that only accepts the plain types those files
hold (dicts, lists, bytes, numbers and NumPy arrays), so a tampered file cannot run
code. Nothing is ever downloaded: point the readers at the unpacked archive.

Example:
    >>> import numpy as np, pickle, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
    ...              "data_batch_5", "test_batch"]:
    ...     batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 7]}
    ...     _ = (d / name).write_bytes(pickle.dumps(batch, protocol=2))
    >>> data = read_cifar10(d)
    >>> data.x_train.shape, data.y_train.tolist()[:2], data.n_classes
    ((10, 32, 32, 3), [3, 7], 10)
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
from pathlib import Path

import numpy as np

__all__ = ["ImageData", "read_cifar10", "read_cifar100"]

_SIDE = 32
_PIXELS = 3 * _SIDE * _SIDE  # 3072
_CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


@dataclasses.dataclass(eq=False)
class ImageData:
    """Images in NHWC layout with integer class labels, split into train and test.

    Attributes:
        x_train: ``(n_train, height, width, channels)`` float array.
        y_train: ``(n_train,)`` int64 labels in ``[0, n_classes)``.
        x_test: ``(n_test, height, width, channels)`` float array.
        y_test: ``(n_test,)`` int64 labels.
        n_classes: number of classes.
        meta: free-form facts (``"source"``, ``"format"``, ``"label"``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    meta: dict = dataclasses.field(default_factory=dict)


class _PlainUnpickler(pickle.Unpickler):
    """Accepts only the globals a NumPy array in a pickle needs; anything else raises."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"CIFAR: batch file {path} not found") from None
    try:
        obj = _PlainUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"CIFAR: {path} is not a CIFAR pickle batch: {e}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ValueError(f"CIFAR: {path} is truncated or not a pickle ({e!r})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR: {path} holds a {type(obj).__name__}, expected a dict")
    # Python 2 pickles give bytes keys; a re-saved file may use str keys.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _check_labels(labels, n: int, n_classes: int, path: Path, key: str) -> np.ndarray:
    try:
        y = np.asarray(labels)
    except Exception as e:  # pragma: no cover - asarray of a list of ints does not fail
        raise ValueError(f"CIFAR: {path}: {key!r} is not a list of integers ({e})") from None
    if y.ndim != 1 or not (y.size == 0 or np.issubdtype(y.dtype, np.integer)):
        raise ValueError(
            f"CIFAR: {path}: {key!r} must be a flat list of integers, got dtype {y.dtype} "
            f"and shape {y.shape}"
        )
    if y.shape[0] != n:
        raise ValueError(f"CIFAR: {path}: {key!r} has {y.shape[0]} labels for {n} images")
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise ValueError(
            f"CIFAR: {path}: {key!r} label {int(y[bad[0]])} of image {int(bad[0])} is "
            f"outside [0, {n_classes})"
        )
    return y.astype(np.int64)


def _pickle_batch(path: Path, label_key: str, n_classes: int):
    d = _load_pickle(path)
    missing = [k for k in ("data", label_key) if k not in d]
    if missing:
        raise ValueError(f"CIFAR: {path} lacks the key(s) {missing}; found {sorted(map(str, d))}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(
            f"CIFAR: {path}: 'data' must be a uint8 array of shape (N, {_PIXELS}), got "
            f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
        )
    if data.shape[1] != _PIXELS:
        raise ValueError(
            f"CIFAR: {path}: 'data' rows have {data.shape[1]} values, expected {_PIXELS} "
            "(3 colour planes of 32 x 32)"
        )
    return data, _check_labels(d[label_key], data.shape[0], n_classes, path, label_key)


def _binary_batch(path: Path, label_classes: tuple[int, ...], keep: int):
    """Records of ``len(label_classes)`` label bytes (each checked against its range)
    plus 3072 image bytes; returns the images and the label byte ``keep``."""
    n_label_bytes = len(label_classes)
    record = n_label_bytes + _PIXELS
    try:
        raw = np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"CIFAR: batch file {path} not found") from None
    n, rest = divmod(raw.size, record)
    if rest:
        raise ValueError(
            f"CIFAR: {path} has {raw.size} bytes, not a whole number of {record}-byte "
            f"records ({n} full records and {rest} bytes left over): truncated, or not "
            f"the {'CIFAR-10' if n_label_bytes == 1 else 'CIFAR-100'} binary format"
        )
    recs = raw.reshape(n, record)
    for byte, n_classes in enumerate(label_classes):
        y = recs[:, byte]
        bad = np.flatnonzero(y >= n_classes)
        if bad.size:
            raise ValueError(
                f"CIFAR: {path}: record {int(bad[0])} has label byte {byte} = "
                f"{int(y[bad[0]])}, outside [0, {n_classes}) (wrong record length, or not "
                "this data set's binary format?)"
            )
    return recs[:, n_label_bytes:], recs[:, keep].astype(np.int64)


def _to_nhwc(data: np.ndarray, dtype) -> np.ndarray:
    x = data.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1)
    return (x.astype(dtype) / dtype(255)).astype(dtype)


def _find_dir(path: Path, names: list[str], subdirs: list[str], what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: {path} is not a directory")
    for cand in [path, *(path / s for s in subdirs)]:
        if all((cand / n).is_file() for n in names):
            return cand
    return path


def _assemble(batches, dtype, n_classes, meta) -> ImageData:
    (xtr, ytr), (xte, yte) = batches
    return ImageData(_to_nhwc(xtr, dtype), ytr, _to_nhwc(xte, dtype), yte, n_classes, meta)


def read_cifar10(path: str | os.PathLike, *, dtype=np.float32) -> ImageData:
    """Read CIFAR-10 (Python pickle or binary version) from an unpacked archive.

    ``path`` is the folder holding the batch files (``cifar-10-batches-py`` or
    ``cifar-10-batches-bin``) or its parent. The Python version is used when its files
    are there, otherwise the binary one.

    Args:
        path: folder of the unpacked archive.
        dtype: float type of the images; pixel values are scaled to ``[0, 1]``.

    Returns:
        :class:`ImageData` with 50,000 training and 10,000 test images of shape
        ``(32, 32, 3)`` for the published files, and 10 classes.

    Raises:
        FileNotFoundError: the folder or one of its batch files is missing.
        ValueError: a file that is truncated, has the wrong record length, lacks the
            expected pickle keys, or holds a label outside ``[0, 10)``; the message
            names the file.
    """
    dtype = np.dtype(dtype).type
    py = _find_dir(Path(path), [*_CIFAR10_TRAIN, "test_batch"], ["cifar-10-batches-py"], "CIFAR-10")
    if all((py / n).is_file() for n in [*_CIFAR10_TRAIN, "test_batch"]):
        parts = [[_pickle_batch(py / n, "labels", 10) for n in _CIFAR10_TRAIN]]
        parts.append([_pickle_batch(py / "test_batch", "labels", 10)])
        fmt, where = "python", py
    else:
        names = [f"{n}.bin" for n in [*_CIFAR10_TRAIN, "test_batch"]]
        b = _find_dir(Path(path), names, ["cifar-10-batches-bin"], "CIFAR-10")
        if not all((b / n).is_file() for n in names):
            raise FileNotFoundError(
                f"CIFAR-10: {path} holds neither the Python batches (data_batch_1 .. "
                "data_batch_5, test_batch) nor the binary ones (data_batch_1.bin .. "
                "test_batch.bin)"
            )
        parts = [[_binary_batch(b / f"{n}.bin", (10,), 0) for n in _CIFAR10_TRAIN]]
        parts.append([_binary_batch(b / "test_batch.bin", (10,), 0)])
        fmt, where = "binary", b
    batches = [
        (np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps])) for ps in parts
    ]
    return _assemble(batches, dtype, 10, {"source": str(where), "format": fmt, "label": "class"})


def read_cifar100(path: str | os.PathLike, *, label: str = "fine", dtype=np.float32) -> ImageData:
    """Read CIFAR-100 (Python pickle or binary version) from an unpacked archive.

    ``path`` is the folder holding ``train`` and ``test`` (``cifar-100-python``) or
    ``train.bin`` and ``test.bin`` (``cifar-100-binary``), or its parent.

    Args:
        path: folder of the unpacked archive.
        label: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).
        dtype: float type of the images; pixel values are scaled to ``[0, 1]``.

    Returns:
        :class:`ImageData` with images of shape ``(32, 32, 3)``.

    Raises:
        ValueError: an unknown ``label``, or a malformed file (the message names it).
        FileNotFoundError: the folder or its files are missing.
    """
    if label not in ("fine", "coarse"):
        raise ValueError(f"read_cifar100: label must be 'fine' or 'coarse', got {label!r}")
    n_classes = 100 if label == "fine" else 20
    dtype = np.dtype(dtype).type
    py = _find_dir(Path(path), ["train", "test"], ["cifar-100-python"], "CIFAR-100")
    if (py / "train").is_file() and (py / "test").is_file():
        key = f"{label}_labels"
        batches = [_pickle_batch(py / n, key, n_classes) for n in ("train", "test")]
        fmt, where = "python", py
    else:
        b = _find_dir(Path(path), ["train.bin", "test.bin"], ["cifar-100-binary"], "CIFAR-100")
        if not ((b / "train.bin").is_file() and (b / "test.bin").is_file()):
            raise FileNotFoundError(
                f"CIFAR-100: {path} holds neither 'train'/'test' (Python version) nor "
                "'train.bin'/'test.bin' (binary version)"
            )
        keep = 1 if label == "fine" else 0  # records are (coarse, fine, pixels)
        batches = [_binary_batch(b / n, (20, 100), keep) for n in ("train.bin", "test.bin")]
        fmt, where = "binary", b
    return _assemble(
        batches, dtype, n_classes, {"source": str(where), "format": fmt, "label": label}
    )
