import jax
import numpy as np
from widelab_core import layers as L
from widelab_core.report_core import accuracy, load_digits_split, train_classifier


def test_digits_split_shapes():
    x_tr, y_tr, x_te, y_te = load_digits_split(0)
    assert x_tr.shape[1:] == (8, 8, 1) and len(x_tr) + len(x_te) == 1797
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    assert set(np.unique(y_tr)) == set(range(10))


def test_training_reduces_loss_and_beats_chance():
    x_tr, y_tr, x_te, y_te = load_digits_split(0)
    net = L.serial(L.Flatten(), L.Dense(64, W_std=2**0.5), L.Relu(), L.Dense(10))
    params, losses = train_classifier(
        net, x_tr, y_tr, steps=200, learning_rate=1e-2, key=jax.random.key(0)
    )
    assert losses[-10:].mean() < 0.5 * losses[:10].mean()
    assert accuracy(net, params, x_te, y_te) > 0.8
