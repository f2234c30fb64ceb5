import jax
import numpy as np
import pytest
from widelab_bayes.data import load_image_subset, one_hot_targets
from widelab_bayes.scale_studies import kl_slope, kl_vs_width


def test_digits_subset_and_preprocessing():
    a = load_image_subset("digits", 30, n_test=10, seed=1, preprocess="standardize")
    assert a.x.shape == (30, 64) and a.x_test.shape == (10, 64) and a.num_classes == 10
    sd = a.x.std(0)
    np.testing.assert_allclose(a.x.mean(0), 0, atol=1e-12)
    assert np.all((np.abs(sd - 1) < 1e-9) | (sd == 0))  # constant pixels stay 0
    b = load_image_subset("digits", 30, n_test=10, seed=1, preprocess="unit-norm")
    np.testing.assert_allclose((b.x**2).mean(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(a.labels, b.labels)  # same subset for the same seed
    y = one_hot_targets(a.labels, 10)
    np.testing.assert_allclose(y.sum(1), 0.0, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="mnist"), "data must be one of"),
        (dict(preprocess="zca"), "preprocess"),
        (dict(n=1800), "exceeds the 1797"),
        (dict(name="cifar10"), "path"),
        (dict(name="cifar10", path="/nonexistent"), "CIFAR-10: /nonexistent"),
    ],
)
def test_bad_data_requests(kwargs, match):
    with pytest.raises((ValueError, OSError), match=match):
        load_image_subset(**({"n": 10} | kwargs))


def test_cifar10_subset_through_the_core_reader(tmp_path):
    """Ten training images in the Python-pickle format; image i is constant at i + 1 with
    label 3i mod 10. All ten are drawn, so "scale" maps image i to (i + 1) / 10."""
    import pickle

    for b in range(5):
        ids = [2 * b, 2 * b + 1]
        batch = {
            b"data": np.array([[i + 1] * 3072 for i in ids], np.uint8),
            b"labels": [3 * i % 10 for i in ids],
        }
        (tmp_path / f"data_batch_{b + 1}").write_bytes(pickle.dumps(batch, protocol=2))
    test = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    d = load_image_subset("cifar10", 8, n_test=2, seed=3, preprocess="scale", path=tmp_path)
    assert d.x.shape == (8, 3072) and d.x_test.shape == (2, 3072) and d.num_classes == 10
    x = np.concatenate([d.x, d.x_test])
    labels = np.concatenate([d.labels, d.labels_test])
    np.testing.assert_allclose(x, x[:, :1] * np.ones((1, 3072)))  # constant rows
    i = np.rint(x[:, 0] * 10).astype(int) - 1
    assert sorted(i.tolist()) == list(range(10))
    np.testing.assert_array_equal(labels, 3 * i % 10)


def test_kl_between_prior_and_posterior_falls_like_one_over_width():
    """KL at widths 64 and 256 (10 outputs, 8 digits): it falls by far more than its
    standard errors, at a log-log slope near -1 (the 1/width law). Narrower widths are
    left out: there the log-mean-exp estimator's downward bias from 400 draws is large."""
    pts = kl_vs_width(jax.random.key(0), [64, 256], num_draws=400, num_bootstrap=100)
    small, wide = pts
    assert small.kl - wide.kl > 4 * np.hypot(small.se, wide.se), pts
    assert -1.4 < kl_slope(pts) < -0.7, pts
