"""Successor Uncertainties with a neural successor-feature network (Janz et al. 2019,
Section 4).
"""

from __future__ import annotations

import numpy as np

from .agents import _greedy
from .linreg import BayesLinReg


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
