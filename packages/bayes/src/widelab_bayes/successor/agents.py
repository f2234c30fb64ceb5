"""Tabular agents: Successor Uncertainties (Janz et al. 2019, Algorithm 1), epsilon-greedy
Q-learning and uniform exploration, and the episode loop that runs them.
"""

from __future__ import annotations

import numpy as np

from .linreg import BayesLinReg


def _greedy(q: np.ndarray, rng: np.random.Generator) -> int:
    best = np.flatnonzero(q >= q.max() - 1e-12)
    return int(best[0] if len(best) == 1 else rng.choice(best))


class TabularSU:
    """Tabular Successor Uncertainties agent (Janz et al. 2019, Algorithm 1).

    ``phi(s, a)`` is one-hot on state-action pairs; ``psi`` starts at ``phi`` (so an
    untried pair's sampled value is its prior draw ``w~_{sa}``) and is learned by TD(0)
    on every step and by ``sweeps`` replay sweeps over the distinct transitions seen,
    with the next action greedy under the episode's sample ``w~``.

    Args:
        n_states: number of states.
        n_actions: number of actions.
        gamma: discount (1 for the finite-horizon tasks here).
        lr: TD learning rate in ``(0, 1]``.
        sweeps: replay sweeps at the start of each episode.
        prior_var: ``theta``.
        noise_var: ``beta``.
        seed: seed of Thompson draws and tie-breaking.

    Raises:
        ValueError: bad settings.
    """

    def __init__(
        self,
        n_states: int,
        n_actions: int,
        *,
        gamma: float = 1.0,
        lr: float = 1.0,
        sweeps: int | None = None,
        prior_var: float = 1.0,
        noise_var: float = 0.01,
        seed: int = 0,
    ):
        if not 0 < lr <= 1 or not 0 <= gamma <= 1:
            raise ValueError(f"need 0 < lr <= 1 and 0 <= gamma <= 1, got {lr}, {gamma}")
        self.nA = int(n_actions)
        self.d = int(n_states) * self.nA
        self.psi = np.eye(self.d)
        self.gamma, self.lr = gamma, lr
        self.sweeps = sweeps
        self.blr = BayesLinReg(self.d, prior_var, noise_var)
        self.rng = np.random.default_rng(seed)
        self.seen: dict[tuple[int, int], tuple[int, bool]] = {}
        self.w = np.zeros(self.d)

    def q(self, s: int) -> np.ndarray:
        """Sampled Q-values of state ``s``."""
        return self.psi[s * self.nA : (s + 1) * self.nA] @ self.w

    def begin_episode(self, horizon: int) -> None:
        """Thompson-sample ``w~`` and replay TD sweeps (as many as the horizon by default)."""
        self.w = self.blr.sample(self.rng)
        if not self.seen:
            return
        keys = np.array([s * self.nA + a for s, a in self.seen])
        nxt = np.array([v[0] for v in self.seen.values()])
        done = np.array([v[1] for v in self.seen.values()])
        for _ in range(self.sweeps if self.sweeps is not None else horizon):
            q_next = self.psi.reshape(-1, self.nA, self.d)[nxt] @ self.w  # (m, nA)
            a_next = np.argmax(q_next, axis=1)
            target = (
                np.eye(self.d)[keys]
                + self.gamma * (~done)[:, None] * self.psi[nxt * self.nA + a_next]
            )
            self.psi[keys] += self.lr * (target - self.psi[keys])

    def act(self, s: int) -> int:
        """Greedy action on the sampled Q (random tie-breaking)."""
        return _greedy(self.q(s), self.rng)

    def observe(self, s: int, a: int, r: float, s2: int, done: bool) -> None:
        """Posterior update and one TD(0) step for ``psi(s, a)``."""
        i = s * self.nA + a
        phi = np.zeros(self.d)
        phi[i] = 1.0
        self.blr.update(phi, r)
        self.seen[(s, a)] = (s2, done)
        nxt = 0.0 if done else self.psi[s2 * self.nA + self.act(s2)]
        self.psi[i] += self.lr * (phi + self.gamma * nxt - self.psi[i])


class EpsilonGreedyQ:
    """Tabular Q-learning with epsilon-greedy exploration (the dithering baseline).

    Args:
        n_states: number of states.
        n_actions: number of actions.
        epsilon: exploration probability in ``[0, 1]``.
        lr: learning rate in ``(0, 1]``.
        gamma: discount.
        seed: seed.

    Raises:
        ValueError: ``epsilon`` outside ``[0, 1]`` or a bad ``lr``.
    """

    def __init__(self, n_states, n_actions, *, epsilon=0.1, lr=0.5, gamma=1.0, seed=0):
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        if not 0 < lr <= 1:
            raise ValueError(f"lr must be in (0, 1], got {lr}")
        self.Q = np.zeros((n_states, n_actions))
        self.eps, self.lr, self.gamma = epsilon, lr, gamma
        self.rng = np.random.default_rng(seed)

    def begin_episode(self, horizon: int) -> None:
        """Nothing to do per episode."""

    def act(self, s: int) -> int:
        """Random with probability ``epsilon``, else greedy."""
        if self.rng.random() < self.eps:
            return int(self.rng.integers(self.Q.shape[1]))
        return _greedy(self.Q[s], self.rng)

    def observe(self, s, a, r, s2, done) -> None:
        """One Q-learning update."""
        target = r + (0.0 if done else self.gamma * self.Q[s2].max())
        self.Q[s, a] += self.lr * (target - self.Q[s, a])


class UniformAgent:
    """Uniformly random actions (the analytic baseline)."""

    def __init__(self, n_states=None, n_actions=2, seed=0):
        self.nA = int(n_actions)
        self.rng = np.random.default_rng(seed)

    def begin_episode(self, horizon: int) -> None:
        """Nothing to do per episode."""

    def act(self, s: int) -> int:
        """A uniform action."""
        return int(self.rng.integers(self.nA))

    def observe(self, s, a, r, s2, done) -> None:
        """Uniform exploration learns nothing."""


def run_episodes(agent, env, max_episodes: int) -> int | None:
    """Episodes until the first success, counting that episode (exact accounting).

    Every episode runs for the full horizon; the count is 1-based, so an agent that
    succeeds in its first episode returns 1.

    Args:
        agent: an object with ``begin_episode(horizon)``, ``act(s)``, ``observe(...)``.
        env: a :class:`BinaryTreeMDP` or :class:`DeepSea`.
        max_episodes: cap (>= 1).

    Returns:
        The episode index of the first success, or None if censored at the cap.

    Raises:
        ValueError: ``max_episodes < 1``.
    """
    if int(max_episodes) < 1:
        raise ValueError(f"max_episodes must be >= 1, got {max_episodes}")
    for episode in range(1, int(max_episodes) + 1):
        agent.begin_episode(env.horizon)
        s = env.reset()
        for _ in range(env.horizon):
            a = agent.act(s)
            s2, r, done, success = env.step(s, a)
            agent.observe(s, a, r, s2, done)
            s = s2
            if success:
                return episode
            if done:
                break
    return None
