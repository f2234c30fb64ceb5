"""Known results of Hron et al. (2023) and closed forms for the equilibrium machinery."""

import itertools

import numpy as np
import pytest
from widelab_core.testing import float64
from widelab_games import (
    best_response_gains,
    circle_candidates,
    collapse_threshold,
    continuation,
    find_equilibria,
    make_game,
    mean_direction,
    payoff_tensor,
    pure_equilibria,
    second_order_test,
    utilities,
)
from widelab_games.hardmax import hardmax_deviation_gains

RNG = np.random.default_rng(0)
NONNEG = np.abs(RNG.normal(size=(120, 3))) + 0.05 * RNG.random((120, 3))


def _collapse(game):
    return np.tile(mean_direction(game), (game.n_producers, 1))


def test_large_tau_collapse_to_mean_is_found_and_passes_second_order():
    """Non-negative demand, tau above the threshold: every restart of the ascent ends
    with all producers on the mean user direction, a strict local NE with no profitable
    deviation (Hron et al. 2023, Section 2)."""
    game = make_game(NONNEG, 5, 1.0)
    tau = 2.0 * collapse_threshold(game)
    game = game.with_tau(tau)
    res = find_equilibria(game, key=np.random.default_rng(1), n_restarts=4, tol=1e-5)
    assert res.converged.all()
    mu = mean_direction(game)
    np.testing.assert_allclose(res.profiles @ mu, 1.0, atol=1e-4)
    for p in res.profiles:
        assert second_order_test(game, p).status == "local_nash"
    gains = best_response_gains(game, res.profiles[0], key=np.random.default_rng(2), n_starts=4)
    assert gains.max() < 1e-5


def test_collapse_is_always_critical_but_fails_second_order_below_threshold():
    game = make_game(NONNEG, 5, 1.0)
    t_star = collapse_threshold(game)
    statuses = {}
    for f in (3.0, 1.2, 0.8, 0.3, 0.05):
        res = second_order_test(game.with_tau(f * t_star), _collapse(game))
        assert res.grad_norm.max() < 1e-6  # critical at every tau
        statuses[f] = res.status
    assert statuses == {
        3.0: "local_nash",
        1.2: "local_nash",
        0.8: "not_nash",
        0.3: "not_nash",
        0.05: "not_nash",
    }
    # at small tau a unilateral deviation away from the mean strictly gains
    small = game.with_tau(0.3 * t_star)
    gains = best_response_gains(small, _collapse(game), key=np.random.default_rng(3))
    assert gains.min() > 1e-3


def test_random_profile_is_not_critical():
    game = make_game(NONNEG, 4, 0.2)
    prof = np.random.default_rng(8).normal(size=(4, 3))
    assert second_order_test(game, prof).status == "not_critical"


def test_collapse_threshold_closed_form_on_orthonormal_demand():
    """Demand uniform on e_1..e_n: mu = 1/n, P Cov P = P/n, so tau* = (1-2/n)/sqrt(n)."""
    for n in (3, 4, 6):
        game = make_game(np.eye(n), n, 1.0)
        t_star = (1 - 2 / n) / np.sqrt(n)
        assert collapse_threshold(game) == pytest.approx(t_star, rel=1e-12)
        above = second_order_test(game.with_tau(1.02 * t_star), _collapse(game))
        below = second_order_test(game.with_tau(0.98 * t_star), _collapse(game))
        assert (above.status, below.status) == ("local_nash", "not_nash")


def _second_derivative_on_circle(users, angles, i, tau):
    """d^2 u_i / d theta_i^2 on S^1 by hand: scores cos(phi_c - theta_j)."""
    phi = np.arctan2(users[:, 1], users[:, 0])
    sc = np.cos(phi[:, None] - angles[None, :]) / tau
    p = np.exp(sc - sc.max(1, keepdims=True))
    p = (p / p.sum(1, keepdims=True))[:, i]
    ds = np.sin(phi - angles[i]) / tau
    d2s = -np.cos(phi - angles[i]) / tau
    return np.mean(p * (1 - p) * (1 - 2 * p) * ds**2 + p * (1 - p) * d2s)


@pytest.mark.parametrize("method", ["normalized", "sphere"])
def test_symmetric_polygon_matches_analytic_equilibrium(method):
    """K users on a regular K-gon, K producers: by symmetry the producers at the K
    midpoints between neighbouring users form a critical point with utilities 1/K; every
    restart of the ascent finds it, and the tangent Hessian equals the hand-derived
    second derivative on the circle."""
    k, tau = 5, 0.6
    users = circle_candidates(k, 0.3)
    game = make_game(users, k, tau)
    res = find_equilibria(
        game, key=np.random.default_rng(4), n_restarts=4, tol=1e-6, max_steps=4000, method=method
    )
    assert res.converged.all()
    analytic = np.sort(np.mod(0.3 + np.pi / k + 2 * np.pi * np.arange(k) / k, 2 * np.pi))
    for p, u in zip(res.profiles, res.utilities):
        ang = np.sort(np.mod(np.arctan2(p[:, 1], p[:, 0]), 2 * np.pi))
        np.testing.assert_allclose(ang, analytic, atol=2e-3)
        np.testing.assert_allclose(u, 1 / k, atol=1e-5)
    mid = circle_candidates(k, 0.3 + np.pi / k)
    so = second_order_test(game, mid)
    assert so.status == "local_nash" and so.grad_norm.max() < 1e-6
    by_hand = _second_derivative_on_circle(users, np.arctan2(mid[:, 1], mid[:, 0]), 0, tau)
    assert so.max_eig[0] == pytest.approx(tau**2 * by_hand, rel=1e-6)


def test_no_pure_equilibrium_instance_has_positive_best_response_gain():
    """Three users at 0, 120, 240 degrees and two producers: in the hardmax game the
    loser can always capture two users, so no pure NE exists (enumeration on a 10-degree
    grid: every profile leaves someone 1/6 to gain); at small tau the softmax game's
    critical points still leave a unilateral gain close to that."""
    users = circle_candidates(3)
    hard = make_game(users, 2, 0.0)
    analysis = pure_equilibria(payoff_tensor(hard, circle_candidates(36)))
    assert len(analysis.equilibria) == 0
    assert analysis.min_gain == pytest.approx(1 / 6, abs=1e-6)  # float32 weights
    game = make_game(users, 2, 1.0)
    res = continuation(game, [1.0, 0.3, 0.1, 0.03], key=np.random.default_rng(5), n_restarts=4)
    small = game.with_tau(0.03)
    for p in res[-1].profiles:
        gains = best_response_gains(small, p, key=np.random.default_rng(6), n_starts=6)
        assert gains.max() > 0.1
        assert hardmax_deviation_gains(hard, p, circle_candidates(360)).max() > 0.1


def test_finite_game_enumeration_cross_checks_brute_force():
    rng = np.random.default_rng(0)
    users = np.abs(rng.normal(size=(9, 2)))  # users in one quadrant: pure NE exist
    game = make_game(users, 3, 0.0, weights=rng.random(9))
    cand = circle_candidates(8, 0.1)
    tensor = payoff_tensor(game, cand)
    analysis = pure_equilibria(tensor)
    brute = []
    for prof in itertools.product(range(8), repeat=3):
        u = np.asarray(utilities(game, cand[list(prof)], tie_tol=1e-9), np.float64)
        np.testing.assert_allclose(tensor[prof], u, atol=1e-6)
        best = True
        for i in range(3):
            for alt in range(8):
                dev = list(prof)
                dev[i] = alt
                if tensor[tuple(dev)][i] > tensor[prof][i] + 1e-12:
                    best = False
        if best:
            brute.append(prof)
    assert sorted(map(tuple, analysis.equilibria)) == brute
    assert len(brute) > 0  # this instance has pure equilibria
    assert analysis.min_gain == 0.0


def _numpy_adam_ascent(users, w, theta, tau, lr, tol, max_steps, decay=100.0):
    """One restart of the normalised-parameter Adam ascent, written out in NumPy."""
    m = v = np.zeros_like(theta)
    for t in range(max_steps + 1):
        s = theta / np.linalg.norm(theta, axis=1, keepdims=True)
        z = users @ s.T / tau
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (w[:, None] * p * (1 - p)).T @ users / tau
        rg = g - np.sum(g * s, axis=1, keepdims=True) * s
        if t == max_steps or tau * np.linalg.norm(rg, axis=1).max() <= tol:
            return s, t
        grad = -rg / np.linalg.norm(theta, axis=1, keepdims=True)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        mh, vh = m / (1 - 0.9 ** (t + 1)), v / (1 - 0.999 ** (t + 1))
        theta = theta - lr / np.sqrt(1 + t / decay) * mh / (np.sqrt(vh) + 1e-8)


def test_batched_restarts_follow_each_restarts_own_ascent():
    """All restarts advance in one loop with shared matrix products; each must still take
    exactly its own ascent (its own stopping step, Adam state frozen once stopped), with
    or without user blocks (7 does not divide 50, so the last block is padded)."""
    rng = np.random.default_rng(7)
    users, w = rng.normal(size=(50, 4)), rng.random(50)
    theta0 = rng.normal(size=(3, 5, 4))
    theta0 /= np.linalg.norm(theta0, axis=-1, keepdims=True)  # find_equilibria normalises init
    with float64():
        game = make_game(users, 5, 0.4, weights=w)
        ref = [_numpy_adam_ascent(users, w / w.sum(), th, 0.4, 0.05, 1e-3, 300) for th in theta0]
        for block in (None, 7):
            res = find_equilibria(game, init=theta0, tol=1e-3, max_steps=300, user_batch=block)
            assert res.steps.tolist() == [t for _, t in ref]
            np.testing.assert_allclose(res.profiles, np.stack([s for s, _ in ref]), atol=1e-9)
    assert len(set(res.steps.tolist())) > 1  # the restarts stop at different steps


def test_solver_input_errors():
    game = make_game(NONNEG, 3, 0.5)
    with pytest.raises(ValueError, match="method"):
        find_equilibria(game, key=np.random.default_rng(0), method="newton")
    with pytest.raises(ValueError, match="key="):
        find_equilibria(game)
    with pytest.raises(ValueError, match="hardmax"):
        find_equilibria(game.with_tau(0.0), key=np.random.default_rng(0))
    with pytest.raises(ValueError, match="strictly decreasing"):
        continuation(game, [0.1, 0.3], key=np.random.default_rng(0))
    with pytest.raises(ValueError, match="taus > 0"):
        continuation(game, [0.3, 0.0], key=np.random.default_rng(0))
    with pytest.raises(ValueError, match="init must have shape"):
        find_equilibria(game, init=np.ones(3))
    with pytest.raises(ValueError, match="user_batch"):
        find_equilibria(game, key=np.random.default_rng(0), user_batch=0)
    with pytest.raises(ValueError, match="too many"):
        payoff_tensor(make_game(NONNEG, 6, 0.0), np.eye(3).repeat(4, axis=0) + 0.1)
    with pytest.raises(ValueError, match="zero mean"):
        mean_direction(make_game(circle_candidates(4), 2, 1.0))
