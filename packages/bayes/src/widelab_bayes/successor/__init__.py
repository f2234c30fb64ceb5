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

The pieces: :mod:`.environments` (tree MDP, Deep Sea), :mod:`.linreg` (the reward
posterior), :mod:`.agents` (tabular agents and the episode loop), :mod:`.neural` (the
neural agent) and :mod:`.study` (the scaling study).
"""

from .agents import EpsilonGreedyQ, TabularSU, UniformAgent, run_episodes
from .environments import BinaryTreeMDP, DeepSea, make_env
from .linreg import BayesLinReg
from .neural import NeuralSU
from .study import ScalingStudy, fit_power_law, scaling_study, uniform_median_episodes

__all__ = [
    "BayesLinReg",
    "BinaryTreeMDP",
    "DeepSea",
    "EpsilonGreedyQ",
    "NeuralSU",
    "ScalingStudy",
    "TabularSU",
    "UniformAgent",
    "fit_power_law",
    "make_env",
    "run_episodes",
    "scaling_study",
    "uniform_median_episodes",
]
