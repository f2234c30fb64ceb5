"""Layered, deterministic, finite-horizon environments: the binary tree MDP (Janz et al.
2019, Section 5.1) and Deep Sea (Osband et al. 2019).
"""

from __future__ import annotations

import numpy as np


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
