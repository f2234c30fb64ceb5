"""CIFAR readers on small files written in the published formats, and preprocessing."""

import pickle

import numpy as np
import pytest
from widelab_core.datasets import read_cifar10, read_cifar100, standardize_channels, zca_whiten

TRAIN10 = [f"data_batch_{i}" for i in range(1, 6)]


def _images(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _expected_nhwc(data, dtype=np.float32):
    """Independent decoding of one row: pixel (r, c) of channel k is data[k*1024 + r*32 + c]."""
    n = data.shape[0]
    out = np.empty((n, 32, 32, 3), dtype)
    for i in range(n):
        for k in range(3):
            out[i, :, :, k] = data[i, k * 1024 : (k + 1) * 1024].reshape(32, 32)
    return out / dtype(255)


def _write_cifar10_py(d, rng, protocol=2, per_batch=2):
    parts = {}
    for name in [*TRAIN10, "test_batch"]:
        data, labels = _images(rng, per_batch), rng.integers(0, 10, per_batch).tolist()
        batch = {
            b"batch_label": b"x",
            b"data": data,
            b"labels": labels,
            b"filenames": [b"a"] * per_batch,
        }
        (d / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        parts[name] = (data, labels)
    return parts


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar10_python_batches_decode_planes_to_nhwc(tmp_path, protocol):
    rng = np.random.default_rng(0)
    parts = _write_cifar10_py(tmp_path, rng, protocol)
    data = read_cifar10(tmp_path)
    train = np.concatenate([parts[n][0] for n in TRAIN10])
    assert data.x_train.shape == (10, 32, 32, 3) and data.x_train.dtype == np.float32
    np.testing.assert_array_equal(data.x_train, _expected_nhwc(train))
    np.testing.assert_array_equal(data.x_test, _expected_nhwc(parts["test_batch"][0]))
    assert data.y_train.tolist() == sum((parts[n][1] for n in TRAIN10), [])
    assert data.meta["format"] == "python" and data.n_classes == 10


def test_cifar10_binary_and_parent_folder(tmp_path):
    rng = np.random.default_rng(1)
    sub = tmp_path / "cifar-10-batches-bin"
    sub.mkdir()
    want = []
    for name in [*TRAIN10, "test_batch"]:
        data, labels = _images(rng, 3), rng.integers(0, 10, 3, dtype=np.uint8)
        (sub / f"{name}.bin").write_bytes(np.column_stack([labels, data]).tobytes())
        want.append((data, labels))
    got = read_cifar10(tmp_path, dtype=np.float64)
    np.testing.assert_array_equal(got.x_test, _expected_nhwc(want[-1][0], np.float64))
    np.testing.assert_array_equal(got.y_train, np.concatenate([w[1] for w in want[:-1]]))
    assert got.x_train.dtype == np.float64 and got.meta["format"] == "binary"


def test_cifar100_both_formats_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(2)
    py, bn = tmp_path / "py", tmp_path / "bin"
    py.mkdir()
    bn.mkdir()
    want = {}
    for name, n in [("train", 4), ("test", 3)]:
        data = _images(rng, n)
        fine, coarse = rng.integers(0, 100, n), rng.integers(0, 20, n)
        batch = {b"data": data, b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist()}
        (py / name).write_bytes(pickle.dumps(batch, protocol=2))
        (bn / f"{name}.bin").write_bytes(
            np.column_stack([coarse.astype(np.uint8), fine.astype(np.uint8), data]).tobytes()
        )
        want[name] = (data, {"fine": fine, "coarse": coarse})
    for folder in (py, bn):
        for label in ("fine", "coarse"):
            got = read_cifar100(folder, label=label)
            assert got.n_classes == (100 if label == "fine" else 20)
            for x, y, name in [
                (got.x_train, got.y_train, "train"),
                (got.x_test, got.y_test, "test"),
            ]:
                np.testing.assert_array_equal(y, want[name][1][label])
                np.testing.assert_array_equal(x, _expected_nhwc(want[name][0]))


def _bad(tmp_path, name, payload):
    rng = np.random.default_rng(3)
    _write_cifar10_py(tmp_path, rng)
    (tmp_path / name).write_bytes(payload)
    return tmp_path


@pytest.mark.parametrize(
    "payload, match",
    [
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2),
            r"lacks the key\(s\) \['labels'\]",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 10]}),
            r"label 10 of image 1 is outside \[0, 10\)",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [1, 1]}),
            "3000 values, expected 3072",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}),
            "1 labels for 2 images",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]})[:100],
            "truncated",
        ),
        (pickle.dumps([1, 2]), "holds a list, expected a dict"),
        (
            b"cos\nsystem\n(S'true'\ntR.",
            "refusing to load os.system",
        ),
    ],
)
def test_cifar10_malformed_pickles_name_the_file(tmp_path, payload, match):
    d = _bad(tmp_path, "data_batch_3", payload)
    with pytest.raises(ValueError, match=match) as e:
        read_cifar10(d)
    assert "data_batch_3" in str(e.value)


def test_binary_truncated_and_out_of_range_labels(tmp_path):
    rng = np.random.default_rng(4)
    for name in [*TRAIN10, "test_batch"]:
        (tmp_path / f"{name}.bin").write_bytes(
            np.column_stack([np.zeros(2, np.uint8), _images(rng, 2)]).tobytes()
        )
    good = (tmp_path / "test_batch.bin").read_bytes()
    (tmp_path / "test_batch.bin").write_bytes(good[:-5])
    with pytest.raises(
        ValueError, match=r"test_batch.bin has 6141 bytes.*1 full records and 3068 bytes"
    ):
        read_cifar10(tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(bytes([12]) + good[1:])
    with pytest.raises(ValueError, match=r"test_batch.bin: record 0 has label byte 0 = 12"):
        read_cifar10(tmp_path)
    # a CIFAR-10 binary file is not a CIFAR-100 one: the record length does not fit
    for name in ("train.bin", "test.bin"):
        (tmp_path / name).write_bytes(good * 3074)
    with pytest.raises(ValueError, match=r"train.bin: record \d+ has label byte \d = \d+, outside"):
        read_cifar100(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither"):
        read_cifar100(tmp_path / "..", label="coarse")
    with pytest.raises(ValueError, match="label must be 'fine' or 'coarse', got 'x'"):
        read_cifar100(tmp_path, label="x")


def test_standardize_channels_fits_on_train_only():
    rng = np.random.default_rng(5)
    train = rng.normal(3.0, 2.0, size=(40, 4, 4, 3)) * np.array([1.0, 5.0, 0.5])
    test = rng.normal(size=(7, 4, 4, 3))
    tr, te = standardize_channels(train, test)
    np.testing.assert_allclose(tr.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(tr.std(axis=(0, 1, 2)), 1, atol=1e-7)
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    np.testing.assert_allclose(te, (test - mean) / (std + 1e-8), rtol=1e-12)
    with pytest.raises(ValueError, match=r"array 1 after x_train has shape \(7, 4, 4, 2\)"):
        standardize_channels(train, test[..., :2])


def test_zca_closed_form_and_regularised_identity():
    rng = np.random.default_rng(6)
    n, d = 300, 12
    mix = rng.normal(size=(d, d)) * np.geomspace(1, 1e-2, d)
    train = (rng.normal(size=(n, d)) @ mix).reshape(n, 2, 2, 3) + 4.0
    test = rng.normal(size=(9, 2, 2, 3))
    for reg in (0.0, 0.1, 2.0):
        tr, te = zca_whiten(train, test, reg=reg)
        flat = train.reshape(n, d)
        c = np.cov(flat, rowvar=False, bias=True)
        m = np.trace(c) / d
        w = tr.reshape(n, d)
        # whitened train covariance is C (C + reg m I)^-1 (the identity at reg = 0)
        want = c @ np.linalg.inv(c + reg * m * np.eye(d))
        np.testing.assert_allclose(w.T @ w / n, want, atol=1e-9)
        # test images use the train mean and the symmetric matrix (C + reg m I)^-1/2
        lam, u = np.linalg.eigh(c + reg * m * np.eye(d))
        wmat = u @ np.diag(lam**-0.5) @ u.T
        np.testing.assert_allclose(
            te.reshape(9, d), (test.reshape(9, d) - flat.mean(0)) @ wmat, atol=1e-9
        )
        # ZCA stays as close as possible to the input: W is symmetric positive definite
        np.testing.assert_allclose(wmat, wmat.T, atol=1e-12)
    with pytest.raises(ValueError, match="singular and reg=0"):
        zca_whiten(np.ones((5, 3)) * np.arange(5)[:, None], reg=0.0)
    with pytest.raises(ValueError, match="reg must be a finite number >= 0, got -1"):
        zca_whiten(train, reg=-1)
