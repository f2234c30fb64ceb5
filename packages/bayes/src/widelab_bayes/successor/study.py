"""Episodes-to-solve against problem size for Successor Uncertainties and the baselines
(Janz et al. 2019, Section 5.1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .agents import EpsilonGreedyQ, TabularSU, run_episodes
from .environments import make_env


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
        seed: base seed; run ``j`` at size ``i`` uses child ``i * n_seeds + j`` of
            ``numpy.random.SeedSequence(seed).spawn(...)`` for its environment and agent
            seeds, so every run has its own independent stream.
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
    # one independent stream per (size, repeat): SeedSequence children, each giving the
    # environment's and the agents' integer seeds
    runs = np.random.SeedSequence(int(seed)).spawn(len(sizes) * n_seeds)
    loop = progress(list(enumerate(sizes))) if progress else enumerate(sizes)
    for i, size in loop:
        for j in range(n_seeds):
            env_seed, agent_seed = (int(v) for v in runs[i * n_seeds + j].generate_state(2))
            for sp in specs:
                if sp.name == "epsilon-greedy" and size > epsilon_max_size:
                    continue
                e = make_env(env, size, seed=env_seed)
                n = run_episodes(sp.make(e, agent_seed), e, max_episodes)
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
