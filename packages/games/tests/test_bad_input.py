"""Bad settings of the equilibrium search: a clear error, never a stack of nothing."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from widelab_games import continuation, find_equilibria, make_game

USERS = np.random.default_rng(0).normal(size=(6, 2))
USERS /= np.linalg.norm(USERS, axis=1, keepdims=True)
GAME = make_game(USERS, 2, 0.5)
KEY = jax.random.key(0)


@pytest.mark.parametrize("restarts", [0, -1])
def test_zero_restarts(restarts):
    with pytest.raises(ValueError, match=f"n_restarts must be an integer >= 1, got {restarts}"):
        continuation(GAME, [1.0, 0.5], key=KEY, n_restarts=restarts)


@pytest.mark.parametrize("tau", [float("nan"), float("inf")])
def test_non_finite_tau(tau):
    with pytest.raises(ValueError, match="continuation needs finite taus > 0"):
        continuation(GAME, [tau], key=KEY, n_restarts=1, max_steps=1)


def test_zero_steps_and_empty_init():
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1, got 0"):
        find_equilibria(GAME, key=KEY, max_steps=0)
    with pytest.raises(ValueError, match="R >= 1"):
        find_equilibria(GAME, init=np.zeros((0, 2, 2)))


@settings(max_examples=15, deadline=None)
@given(
    taus=st.lists(
        st.sampled_from([2.0, 1.0, 0.5, 0.0, -1.0, float("nan"), float("inf")]), max_size=3
    )
)
def test_continuation_rejects_bad_tau_paths_before_searching(taus):
    ok = (
        len(taus) > 0
        and all(np.isfinite(t) and t > 0 for t in taus)
        and all(b < a for a, b in zip(taus, taus[1:]))
    )
    if ok:
        return  # a valid path: searched elsewhere
    with pytest.raises(ValueError):
        continuation(GAME, taus, key=KEY, n_restarts=1, max_steps=1)
