import argparse

import numpy as np
import pytest
from widelab_bayes.successor import (
    BayesLinReg,
    BinaryTreeMDP,
    DeepSea,
    EpsilonGreedyQ,
    NeuralSU,
    TabularSU,
    UniformAgent,
    fit_power_law,
    make_env,
    run_episodes,
    scaling_study,
    uniform_median_episodes,
)
from widelab_core.testing import standard_error


def _rollout(env, actions):
    s, total, steps = env.reset(), 0.0, 0
    for a in actions:
        s, r, done, success = env.step(s, a)
        total += r
        steps += 1
        if done:
            return total, steps, success
    raise AssertionError("episode did not end")


def test_binary_tree_dynamics():
    env = BinaryTreeMDP(5, seed=3)
    assert env.n_states == 11 and env.horizon == 5
    assert _rollout(env, env.correct) == (1.0, 5, True)
    wrong = env.correct.copy()
    wrong[2] = 1 - wrong[2]
    assert _rollout(env, wrong) == (0.0, 5, False)  # falls off, still plays L steps
    with pytest.raises(ValueError, match="terminal"):
        env.step(5, 0)
    with pytest.raises(ValueError, match="depth"):
        BinaryTreeMDP(0)


def test_deep_sea_dynamics():
    env = DeepSea(4, seed=1)
    s, total = env.reset(), 0.0
    for _ in range(4):
        row, col = divmod(s, 5)
        s, r, done, success = env.step(s, int(env.right[row, col]))
        total += r
    assert done and success and total == pytest.approx(1.0 - 0.01)
    s = env.reset()
    row, col = divmod(s, 5)
    s, r, done, success = env.step(s, 1 - int(env.right[row, col]))
    assert r == 0.0 and s == 5  # moved down, stayed at column 0
    with pytest.raises(ValueError, match="unknown environment"):
        make_env("maze", 3)


def test_uniform_agent_matches_analytic_median():
    depth, runs = 3, 2000
    m = uniform_median_episodes(depth)
    q = 2.0**-depth
    assert m == int(np.ceil(np.log(0.5) / np.log(1 - q)))
    counts = np.array(
        [
            run_episodes(UniformAgent(seed=i), BinaryTreeMDP(depth, seed=i), 10_000)
            for i in range(runs)
        ]
    )
    cdf = 1 - (1 - q) ** m  # exact P(first success <= median)
    frac = np.mean(counts <= m)
    assert abs(frac - cdf) < 4 * np.sqrt(cdf * (1 - cdf) / runs)
    assert counts.mean() == pytest.approx(1 / q, rel=4 * np.sqrt(1 - q) / np.sqrt(runs))


def test_bayes_linear_regression_rank_one_equals_batch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.standard_normal(30)
    blr = BayesLinReg(4, prior_var=2.0, noise_var=0.05)
    for xi, yi in zip(X, y):
        blr.update(xi, yi)
    prec = np.eye(4) / 2.0 + X.T @ X / 0.05
    np.testing.assert_allclose(blr.cov, np.linalg.inv(prec), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(blr.mean, np.linalg.solve(prec, X.T @ y / 0.05), rtol=1e-8)
    draws = np.stack([blr.sample(rng) for _ in range(4000)])
    se = np.sqrt(np.diag(blr.cov) / 4000)
    assert np.all(np.abs(draws.mean(0) - blr.mean) < 4 * se)
    with pytest.raises(ValueError, match="positive variances"):
        BayesLinReg(3, prior_var=-1.0)


def _p_uniform_all_within(episodes, size):
    """Probability that uniform exploration, whose episodes to first success are geometric
    with ``q = 2^-size``, solves every run within the episodes the agent needed (a one-sided
    p-value of the agent against dithering)."""
    q = 2.0**-size
    return float(np.prod([1.0 - (1.0 - q) ** n for n in episodes]))


def _p_uniform_at_least(successes, runs, episodes, size):
    """Probability that uniform exploration solves at least ``successes`` of ``runs`` runs
    within ``episodes`` episodes each (binomial upper tail)."""
    from math import comb

    p = 1.0 - (1.0 - 2.0**-size) ** episodes
    return sum(comb(runs, k) * p**k * (1 - p) ** (runs - k) for k in range(successes, runs + 1))


def test_successor_uncertainties_beats_dithering():
    depth = 10
    su = [
        run_episodes(
            TabularSU(BinaryTreeMDP(depth, seed=s).n_states, 2, seed=s),
            BinaryTreeMDP(depth, seed=s),
            2000,
        )
        for s in range(3)
    ]
    assert all(n is not None for n in su)
    # uniform exploration would solve all three this fast with probability < 1e-3
    assert _p_uniform_all_within(su, depth) < 1e-3, su
    # epsilon-greedy Q-learning with zero-initialised values explores by dithering
    eg = [
        run_episodes(EpsilonGreedyQ(21, 2, seed=s), BinaryTreeMDP(depth, seed=s), 150)
        for s in range(3)
    ]
    # dithering: its successes are consistent with uniform exploration at the 1% level
    solved = sum(n is not None for n in eg)
    assert _p_uniform_at_least(solved, len(eg), 150, depth) > 0.01, eg


def test_successor_uncertainties_on_deep_sea():
    size = 6
    runs = []
    for s in range(3):
        env = DeepSea(size, seed=s)
        runs.append(run_episodes(TabularSU(env.n_states, 2, seed=s), env, 500))
    assert all(n is not None for n in runs)
    assert _p_uniform_all_within(runs, size) < 1e-2, runs


def test_scaling_study_polynomial_exponent():
    st = scaling_study((4, 8, 16), n_seeds=3, max_episodes=1000, epsilon_max_size=4)
    su = st.medians["successor uncertainties"]
    assert np.all(np.isfinite(su))
    # polynomial, far from exponential: per-seed exponents, mean + 4 standard errors, stay
    # below the log-log slope of uniform exploration's median (2^L) over the same sizes
    eps = st.episodes["successor uncertainties"]
    per_seed = np.array([fit_power_law(st.sizes, eps[:, j])[1] for j in range(eps.shape[1])])
    uniform_slope = fit_power_law(st.sizes, st.uniform_median)[1]
    assert per_seed.mean() + 4 * standard_error(per_seed) < uniform_slope, (per_seed, uniform_slope)
    assert st.exponent > 0  # harder trees take longer
    assert np.isnan(st.medians["epsilon-greedy"][2])  # not simulated beyond size 4
    a, b = fit_power_law([1, 2, 4], [3, 12, 48])
    assert (a, b) == pytest.approx((3.0, 2.0))
    with pytest.raises(ValueError, match="distinct sizes"):
        scaling_study((4, 4))


def test_agent_errors():
    with pytest.raises(ValueError, match="lr"):
        TabularSU(3, 2, lr=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedyQ(3, 2, epsilon=1.5)
    with pytest.raises(ValueError, match="max_episodes"):
        run_episodes(UniformAgent(), BinaryTreeMDP(2), 0)


@pytest.mark.slow
def test_neural_successor_uncertainties_solves_small_tree():
    env = BinaryTreeMDP(6, seed=0)
    n = run_episodes(NeuralSU(env, seed=0, train_steps=30), env, 300)
    assert n is not None and n < uniform_median_episodes(6)  # 45


def test_successor_command(capsys):
    from widelab_bayes.approx_report import configure

    parser = argparse.ArgumentParser()
    configure(parser.add_subparsers())
    args = parser.parse_args(
        ["successor", "--sizes", "3,5", "--seeds", "2", "--max-episodes", "200"]
    )
    assert args.func(args) == 0
    assert "fitted exponent" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["successor", "--sizes", "a,b"])
