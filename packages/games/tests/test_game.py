"""Exposure, utilities and derivatives against autodiff, closed forms and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_core.testing import float64
from widelab_games import exposure, make_game, riemannian_gradients, utilities
from widelab_games.game import own_hessians, utilities_and_gradients


def _instance(seed=0, m=40, n=4, d=3):
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(m, d))
    s = rng.normal(size=(n, d))
    return users, s / np.linalg.norm(s, axis=1, keepdims=True), rng.random(m)


def test_utilities_sum_to_one_and_match_manual_softmax():
    users, s, w = _instance()
    g = make_game(users, 4, 0.3, weights=w)
    u = np.asarray(utilities(g, s))
    logits = users @ s.T / 0.3
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(u, (w / w.sum()) @ p, rtol=2e-5)
    assert abs(u.sum() - 1) < 1e-5


def test_gradients_and_hessians_match_autodiff():
    users, s, w = _instance(1)
    with float64():
        g = make_game(users, 4, 0.25, weights=w)

        @jax.jit
        def everything(users, weights, s, tau):
            def own(i, x):
                return utilities_and_gradients(users, weights, s.at[i].set(x), tau)[0][i]

            idx = jnp.arange(s.shape[0])
            auto_g = jax.vmap(jax.grad(own, argnums=1))(idx, s)
            auto_h = jax.vmap(jax.hessian(own, argnums=1))(idx, s)
            util, grad = utilities_and_gradients(users, weights, s, tau)
            hess = own_hessians(users, weights, s, tau)
            # accumulating over user blocks (with padding) gives the same sums
            u2, g2 = utilities_and_gradients(users, weights, s, tau, user_batch=7)
            return util, grad, hess, auto_g, auto_h, u2, g2

        util, grad, hess, auto_g, auto_h, u2, g2 = everything(
            g.users, g.weights, jnp.asarray(s), g.tau
        )
        np.testing.assert_allclose(grad, auto_g, rtol=1e-10)
        np.testing.assert_allclose(hess, auto_h, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(u2, util, rtol=1e-12)
        np.testing.assert_allclose(g2, grad, rtol=1e-12)
        rg = np.asarray(riemannian_gradients(g, s))
        np.testing.assert_allclose(np.sum(rg * s, axis=1), 0, atol=1e-12)


def test_hardmax_splits_ties_and_is_the_small_tau_limit():
    users = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    g0 = make_game(users, 2, 0.0)
    np.testing.assert_allclose(exposure(g0, s), [[1, 0], [0, 1], [0.5, 0.5]])
    np.testing.assert_allclose(utilities(g0, s), [0.5, 0.5], atol=1e-7)
    s2 = np.array([[1.0, 0.2], [0.0, 1.0]])
    np.testing.assert_allclose(
        utilities(make_game(users, 2, 1e-3), s2), utilities(g0, s2), atol=1e-6
    )


@pytest.mark.parametrize(
    "users, kwargs, match",
    [
        (np.array([[1.0, np.nan]]), {}, r"non-finite value nan at row 0, column 1"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), {}, r"zero vector at row 1"),
        (np.zeros((0, 3)), {}, r"empty"),
        (np.ones(3), {}, r"2-D"),
        (np.eye(2), {"tau": -0.1}, r"tau must be a finite number >= 0"),
        (np.eye(2), {"tau": float("inf")}, r"tau"),
        (np.eye(2), {"n_producers": 0}, r"n_producers"),
        (np.eye(2), {"weights": [1.0, -1.0]}, r"weights\[1\]"),
        (np.eye(2), {"weights": [0.0, 0.0]}, r"demand is empty"),
        (np.eye(2), {"weights": [1.0]}, r"shape \(2,\)"),
    ],
)
def test_bad_game_input(users, kwargs, match):
    args = {"n_producers": 2, "tau": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_game(users, args.pop("n_producers"), args.pop("tau"), **args)


def test_bad_profiles():
    g = make_game(np.eye(3), 2, 0.1)
    with pytest.raises(ValueError, match=r"profile has a zero vector at row 1"):
        utilities(g, np.array([[1.0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"3 rows but the game has 2 producers"):
        utilities(g, np.eye(3))
    with pytest.raises(ValueError, match=r"dimension 2 but the demand has dimension 3"):
        utilities(g, np.eye(2))
    with pytest.raises(ValueError, match=r"non-finite"):
        utilities(g, np.array([[np.inf, 0, 0], [1.0, 0, 0]]))
    with pytest.raises(ValueError, match=r"hardmax"):
        riemannian_gradients(g.with_tau(0.0), np.eye(3)[:2])
    with pytest.raises(ValueError, match=r"tau"):
        g.with_tau(-1.0)
