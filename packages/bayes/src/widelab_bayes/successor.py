"""Successor Uncertainties: posterior sampling with successor features.

Janz, Hron, Mazur, Hofmann, Hernandez-Lobato, Tschiatschek (2019), "Successor
Uncertainties: exploration and uncertainty in temporal difference learning", NeurIPS.

Rewards are modelled linearly in features, ``r(s, a) = phi(s, a)^T w + e``,
``e ~ N(0, beta)``, ``w ~ N(0, theta I)`` (their eq. 3), with the Gaussian posterior kept
by rank-one (Sherman-Morrison) updates. Successor features
``psi(s, a) = E[sum_t gamma^t phi(s_t, a_t)]`` are learned by temporal differences, so
that a posterior sample ``w~`` gives a sample of the Q-function
``Q~(s, a) = psi(s, a)^T w~`` (their eq. 5). The agent draws ``w~`` once per episode
and acts greedily on ``Q~`` (posterior sampling for RL).

Environments are layered, deterministic and finite-horizon: the binary tree MDP (the
agent must choose the one correct action at each of ``L`` levels; Janz et al. 2019,
Section 5.1) and Deep Sea (Osband et al. 2019), where rightward moves cost
``0.01 / N`` and only ``N`` rightward moves reach the treasure. A uniformly random agent
succeeds with probability ``2^-L`` per episode, so its episodes to first success are
geometric with median ``ceil(log(1/2) / log(1 - 2^-L))``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# --------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------


def _env_rng(seed: int) -> np.random.Generator:
    """Environment randomness, on a stream distinct from an agent given the same seed."""
    return np.random.default_rng([int(seed), 7919])


class BinaryTreeMDP:
    """The binary tree MDP of depth ``L`` (Janz et al. 2019, Section 5.1).

    States ``0..L`` are the on-path nodes ``g_0..g_L`` (start ``g_0``) and
    ``L+1..2L`` the off-path nodes ``b_1..b_L``. From ``g_i`` the correct action (drawn
    per level by ``seed``) leads to ``g_{i+1}``, the other to ``b_{i+1}``; from ``b_i``
    both actions lead to ``b_{i+1}``. Every episode lasts exactly ``L`` steps; reaching
    ``g_L`` pays 1, everything else 0.

    Args:
        depth: ``L >= 1``.
        seed: seed of the per-level action mapping.

    Raises:
        ValueError: ``depth < 1``.
    """

    n_actions = 2

    def __init__(self, depth: int, seed: int = 0):
        if int(depth) < 1:
            raise ValueError(f"BinaryTreeMDP: depth must be >= 1, got {depth}")
        self.depth = int(depth)
        self.horizon = self.depth
        self.n_states = 2 * self.depth + 1
        self.correct = _env_rng(seed).integers(0, 2, self.depth)

    def reset(self) -> int:
        """The start state ``g_0``."""
        return 0

    def step(self, s: int, a: int) -> tuple[int, float, bool, bool]:
        """One transition: ``(next_state, reward, done, success)``."""
        L = self.depth
        if s < L:  # on path
            nxt = s + 1 if a == self.correct[s] else L + s + 1
        elif L < s < 2 * L:
            nxt = s + 1
        else:
            raise ValueError(f"BinaryTreeMDP: step from terminal or unknown state {s}")
        done = nxt == L or nxt == 2 * L
        success = nxt == L
        return nxt, float(success), done, success

    def observation(self, s: int) -> np.ndarray:
        """One-hot encoding of the state."""
        o = np.zeros(self.n_states)
        o[s] = 1.0
        return o


class DeepSea:
    """Deep Sea of size ``N`` (Osband et al. 2019), with ``N`` moves per episode.

    The agent starts at row 0, column 0 of an ``(N+1) x (N+1)`` grid; each step moves
    one row down and one column right or left (clipped at 0), the meaning of the two
    actions being scrambled per cell by ``seed``. A rightward move costs ``0.01 / N``;
    arriving at column ``N`` (only possible by ``N`` rightward moves) pays 1.

    Args:
        size: ``N >= 1``.
        seed: seed of the per-cell action mapping.

    Raises:
        ValueError: ``size < 1``.
    """

    n_actions = 2

    def __init__(self, size: int, seed: int = 0):
        if int(size) < 1:
            raise ValueError(f"DeepSea: size must be >= 1, got {size}")
        self.size = int(size)
        self.horizon = self.size
        self.n_states = (self.size + 1) ** 2
        self.right = _env_rng(seed).integers(0, 2, (self.size, self.size + 1))

    def reset(self) -> int:
        """The start state (row 0, column 0)."""
        return 0

    def step(self, s: int, a: int) -> tuple[int, float, bool, bool]:
        """One transition: ``(next_state, reward, done, success)``."""
        n = self.size
        row, col = divmod(int(s), n + 1)
        if row >= n:
            raise ValueError(f"DeepSea: step from terminal state {s}")
        go_right = a == self.right[row, col]
        col = min(col + 1, n) if go_right else max(col - 1, 0)
        row += 1
        success = col == n
        reward = (1.0 if success else 0.0) - (0.01 / n if go_right else 0.0)
        return row * (n + 1) + col, reward, row == n, success

    def observation(self, s: int) -> np.ndarray:
        """One-hot row concatenated with one-hot column."""
        n = self.size
        row, col = divmod(int(s), n + 1)
        o = np.zeros(2 * (n + 1))
        o[row] = 1.0
        o[n + 1 + col] = 1.0
        return o


def make_env(name: str, size: int, seed: int = 0):
    """Build an environment by name.

    Args:
        name: ``"tree"`` (:class:`BinaryTreeMDP`) or ``"deepsea"`` (:class:`DeepSea`).
        size: depth or grid size.
        seed: seed of the environment's action mapping.

    Returns:
        The environment.

    Raises:
        ValueError: an unknown name or a bad size.
    """
    if name == "tree":
        return BinaryTreeMDP(size, seed)
    if name == "deepsea":
        return DeepSea(size, seed)
    raise ValueError(f"unknown environment {name!r}; choose 'tree' or 'deepsea'")


# --------------------------------------------------------------------------------------
# Bayesian linear regression with rank-one updates
# --------------------------------------------------------------------------------------


class BayesLinReg:
    """Gaussian posterior of ``w`` in ``r = phi^T w + N(0, noise_var)``, ``w ~ N(0, prior_var I)``.

    Janz et al. (2019), eq. 3-4; each observation updates the covariance by
    Sherman-Morrison, ``S <- S - S phi phi^T S / (noise_var + phi^T S phi)``, and
    ``b <- b + phi r / noise_var``; the mean is ``S b``.

    Args:
        dim: feature dimension.
        prior_var: ``theta > 0``.
        noise_var: ``beta > 0``.

    Raises:
        ValueError: non-positive variances or dimension.
    """

    def __init__(self, dim: int, prior_var: float = 1.0, noise_var: float = 0.01):
        if dim < 1 or prior_var <= 0 or noise_var <= 0:
            raise ValueError(
                f"need dim >= 1 and positive variances, got {dim}, {prior_var}, {noise_var}"
            )
        self.noise_var = float(noise_var)
        self.cov = np.eye(dim) * prior_var
        self.b = np.zeros(dim)

    @property
    def mean(self) -> np.ndarray:
        """Posterior mean ``S b``."""
        return self.cov @ self.b

    def update(self, phi: np.ndarray, r: float) -> None:
        """Add one observation ``(phi, r)`` (rank-one update)."""
        sp = self.cov @ phi
        self.cov -= np.outer(sp, sp) / (self.noise_var + phi @ sp)
        self.b += phi * (r / self.noise_var)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One posterior draw of ``w``."""
        chol = np.linalg.cholesky(self.cov + 1e-10 * np.eye(len(self.b)))
        return self.mean + chol @ rng.standard_normal(len(self.b))


# --------------------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------------------


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


def uniform_median_episodes(size: int) -> int:
    """Analytic median episodes to first success for uniform exploration.

    Success has probability ``q = 2^-size`` per episode (one path of ``size`` binary
    choices), so the count is geometric and its median is
    ``ceil(log(1/2) / log(1 - q))`` (about ``2^size log 2``).

    Args:
        size: tree depth or Deep Sea size (>= 1).

    Returns:
        The median as an int.

    Raises:
        ValueError: ``size < 1``.
    """
    if int(size) < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    q = 2.0 ** -int(size)
    if q == 1.0:
        return 1
    return int(math.ceil(math.log(0.5) / math.log1p(-q)))


# --------------------------------------------------------------------------------------
# Study
# --------------------------------------------------------------------------------------


class ScalingStudy(NamedTuple):
    """Episodes-to-solve against problem size.

    Attributes:
        sizes: problem sizes.
        episodes: ``{agent name: (len(sizes), n_seeds) array}``; ``inf`` where the run hit
            the cap, NaN where the agent was not run.
        medians: ``{agent name: (len(sizes),) medians}`` (inf where most runs hit the cap).
        exponent: fitted ``b`` in ``median ~ a * size^b`` for Successor Uncertainties.
        uniform_median: analytic medians of uniform exploration.
    """

    sizes: np.ndarray
    episodes: dict[str, np.ndarray]
    medians: dict[str, np.ndarray]
    exponent: float
    uniform_median: np.ndarray


def fit_power_law(sizes, values) -> tuple[float, float]:
    """Least-squares fit of ``log values = log a + b log sizes``.

    Args:
        sizes: positive problem sizes.
        values: the measured values (non-finite or non-positive ones are skipped).

    Returns:
        ``(a, b)`` of ``values ~ a * sizes^b``.

    Raises:
        ValueError: fewer than two finite positive points.
    """
    x = np.asarray(sizes, np.float64)
    y = np.asarray(values, np.float64)
    ok = np.isfinite(y) & (y > 0) & (x > 0)
    if ok.sum() < 2:
        raise ValueError(f"need >= 2 finite positive points to fit, got {y}")
    b, log_a = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(np.exp(log_a)), float(b)


@dataclasses.dataclass
class _AgentSpec:
    name: str
    make: object


def scaling_study(
    sizes: Sequence[int] = (4, 8, 12, 16),
    *,
    env: str = "tree",
    n_seeds: int = 5,
    max_episodes: int = 2000,
    epsilon_max_size: int = 8,
    seed: int = 0,
    progress=None,
) -> ScalingStudy:
    """Median episodes to first success against size, for SU and the baselines.

    Janz et al. (2019), Section 5.1 (their Figure 3 in spirit): Successor Uncertainties
    needs a number of episodes growing polynomially in the depth, uniform exploration
    ``~ 2^L log 2`` (analytic) and epsilon-greedy at least as many (simulated up to
    ``epsilon_max_size``).

    Args:
        sizes: problem sizes (>= 1, at least two distinct for the fit).
        env: ``"tree"`` or ``"deepsea"``.
        n_seeds: independent runs per size (environment mapping and agent seed).
        max_episodes: per-run cap.
        epsilon_max_size: simulate epsilon-greedy only up to this size.
        seed: base seed.
        progress: optional wrapper for the size loop (e.g. ``ctx.bar``).

    Returns:
        A :class:`ScalingStudy`.

    Raises:
        ValueError: bad sizes or counts.
    """
    sizes = [int(s) for s in sizes]
    if len(set(sizes)) < 2 or min(sizes) < 1:
        raise ValueError(f"need >= 2 distinct sizes >= 1, got {sizes}")
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    specs = [
        _AgentSpec("successor uncertainties", lambda e, sd: TabularSU(e.n_states, 2, seed=sd)),
        _AgentSpec("epsilon-greedy", lambda e, sd: EpsilonGreedyQ(e.n_states, 2, seed=sd)),
    ]
    episodes = {sp.name: np.full((len(sizes), n_seeds), np.nan) for sp in specs}
    loop = progress(list(enumerate(sizes))) if progress else enumerate(sizes)
    for i, size in loop:
        for j in range(n_seeds):
            sd = seed * 1000 + 37 * i + j
            for sp in specs:
                if sp.name == "epsilon-greedy" and size > epsilon_max_size:
                    continue
                e = make_env(env, size, seed=sd)
                n = run_episodes(sp.make(e, sd), e, max_episodes)
                episodes[sp.name][i, j] = np.inf if n is None else n
    medians = {}
    for name, arr in episodes.items():
        med = np.full(len(sizes), np.nan)
        ran = ~np.all(np.isnan(arr), axis=1)
        med[ran] = np.median(arr[ran], axis=1)
        medians[name] = med
    _, b = fit_power_law(sizes, medians["successor uncertainties"])
    uni = np.array([uniform_median_episodes(s) for s in sizes], np.float64)
    return ScalingStudy(np.asarray(sizes), episodes, medians, b, uni)


class NeuralSU:
    """Successor Uncertainties with function approximation (Janz et al. 2019, Section 4).

    ``phi(s, a) = onehot(a) ⊗ x(s)`` for the environment's observation ``x(s)``;
    ``psi(s, .) = phi(s, .) + f_eta(x(s))`` with ``f_eta`` a core-layer MLP whose output
    is reshaped to ``(n_actions, d)``, trained with optax Adam on the TD loss
    ``||psi(s, a) - sg[phi(s, a) + gamma psi(s', a'*)]||^2`` over the distinct
    transitions seen (``a'*`` greedy under the episode's sample ``w~``). The reward
    posterior is the same rank-one :class:`BayesLinReg`.

    Args:
        env: the environment (gives ``observation``, ``n_states``, ``n_actions``).
        hidden: hidden width of ``f_eta``.
        train_steps: Adam steps at the start of each episode.
        lr: Adam learning rate.
        gamma: discount.
        prior_var: ``theta``.
        noise_var: ``beta``.
        seed: seed.

    Raises:
        ValueError: bad settings.
    """

    def __init__(
        self,
        env,
        *,
        hidden: int = 64,
        train_steps: int = 50,
        lr: float = 1e-2,
        gamma: float = 1.0,
        prior_var: float = 1.0,
        noise_var: float = 0.01,
        seed: int = 0,
    ):
        import jax
        import jax.numpy as jnp
        import optax
        from widelab_core import layers as L

        if hidden < 1 or train_steps < 0 or lr <= 0:
            raise ValueError(
                f"need hidden >= 1, train_steps >= 0, lr > 0: {hidden}, {train_steps}, {lr}"
            )
        self.nA = env.n_actions
        obs = np.stack([env.observation(s) for s in range(env.n_states)])
        self.D = obs.shape[1]
        self.d = self.nA * self.D
        self.obs = jnp.asarray(obs, jnp.float32)
        eye = jnp.eye(self.nA, dtype=jnp.float32)
        # phi_all[s, a] = onehot(a) kron x(s): (S, A, d)
        self.phi_all = jnp.einsum("ab,sd->sabd", eye, self.obs).reshape(
            env.n_states, self.nA, self.d
        )
        self.net = L.serial(L.Dense(hidden), L.Relu(), L.Dense(self.nA * self.d, W_std=0.1))
        _, self.params = self.net.init(jax.random.key(seed), (-1, self.D))
        self.opt = optax.adam(lr)
        self.opt_state = self.opt.init(self.params)
        self.blr = BayesLinReg(self.d, prior_var, noise_var)
        self.rng = np.random.default_rng(seed)
        self.train_steps = train_steps
        cap = env.n_states * self.nA
        self.buf_s = np.zeros(cap, np.int32)
        self.buf_a = np.zeros(cap, np.int32)
        self.buf_s2 = np.zeros(cap, np.int32)
        self.buf_done = np.zeros(cap, np.float32)
        self.buf_mask = np.zeros(cap, np.float32)
        self.index: dict[tuple[int, int], int] = {}
        self.w = np.zeros(self.d, np.float32)
        net, phi_all, obs_all, nA, d, opt = (
            self.net,
            self.phi_all,
            self.obs,
            self.nA,
            self.d,
            self.opt,
        )

        def psi(params, states):
            return phi_all[states] + net.apply(params, obs_all[states]).reshape(-1, nA, d)

        def train(params, opt_state, w, s, a, s2, done, mask):
            def loss(p):
                q2 = psi(p, s2) @ w  # (m, nA)
                a2 = jnp.argmax(q2, axis=1)
                nxt = jnp.take_along_axis(psi(p, s2), a2[:, None, None], axis=1)[:, 0]
                target = jax.lax.stop_gradient(phi_all[s, a] + gamma * (1 - done)[:, None] * nxt)
                pred = jnp.take_along_axis(psi(p, s), a[:, None, None], axis=1)[:, 0]
                err = jnp.sum((pred - target) ** 2, axis=1)
                return jnp.sum(err * mask) / jnp.maximum(jnp.sum(mask), 1.0)

            def step(carry, _):
                p, st = carry
                g = jax.grad(loss)(p)
                upd, st = opt.update(g, st)
                return (optax.apply_updates(p, upd), st), None

            (params, opt_state), _ = jax.lax.scan(
                step, (params, opt_state), None, length=self.train_steps
            )
            return params, opt_state

        all_states = jnp.arange(env.n_states)
        self._q_all = jax.jit(lambda p, w: psi(p, all_states) @ w)
        self._train = jax.jit(train)
        self._phi_np = np.asarray(self.phi_all, np.float64)
        self._q_table = np.zeros((env.n_states, self.nA))

    def begin_episode(self, horizon: int) -> None:
        """Thompson-sample ``w~`` and fit ``psi`` by TD on the replay of distinct transitions."""
        self.w = self.blr.sample(self.rng).astype(np.float32)
        if self.index and self.train_steps:
            self.params, self.opt_state = self._train(
                self.params,
                self.opt_state,
                self.w,
                self.buf_s,
                self.buf_a,
                self.buf_s2,
                self.buf_done,
                self.buf_mask,
            )
        # psi is fixed within an episode: tabulate the sampled Q once
        self._q_table = np.asarray(self._q_all(self.params, self.w))

    def act(self, s: int) -> int:
        """Greedy action on the sampled Q."""
        return _greedy(self._q_table[s], self.rng)

    def observe(self, s, a, r, s2, done) -> None:
        """Posterior update; store the transition."""
        self.blr.update(self._phi_np[s, a], r)
        i = self.index.setdefault((s, a), len(self.index))
        self.buf_s[i], self.buf_a[i], self.buf_s2[i] = s, a, s2
        self.buf_done[i], self.buf_mask[i] = float(done), 1.0
