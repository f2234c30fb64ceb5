"""What every multi-chain driver shares: the run summary, running moments, stored
projections, input checks and compiled timing.

A run stores only a user-chosen projection of each draw (e.g. random projections of
test-set predictions, as Hron et al. 2022 measure ESS in function space) plus
per-chain running moments (Welford) of the positions, never the draws themselves.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

LogDensity = Callable[[jax.Array], jax.Array]
Projection = Callable[[jax.Array], jax.Array]


class SampleResult(NamedTuple):
    """Summary of a multi-chain run (no draws stored, only projections and moments).

    Attributes:
        projections: ``(chains, draws, m)`` projections of every retained draw.
        mean: ``(chains, D)`` running mean of the positions.
        var: ``(chains, D)`` running (population) variance of the positions.
        acceptance_rate: mean acceptance probability after warm-up.
        divergences: number of divergent transitions after warm-up (all chains).
        nonfinite: number of proposals with a non-finite density or gradient.
        gradients_per_chain: gradient evaluations per chain after warm-up.
        warmup_gradients_per_chain: gradient evaluations per chain during warm-up.
        step_size: the step size used after warm-up.
        seconds: wall time of the compiled sampling run (warm-up included).
        compile_seconds: time spent compiling.
        scale: ``(chains, D)`` per-coordinate scales :func:`sample_ghmc` used after
            warm-up (``None`` for the blackjax baselines).
        density_evaluations_per_chain: log-density evaluations per chain after warm-up
            for the gradient-free samplers (``gradients_per_chain`` is 0 for them);
            ``None`` for the gradient samplers, where it equals the gradient count.
    """

    projections: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    acceptance_rate: float
    divergences: int
    nonfinite: int
    gradients_per_chain: float
    warmup_gradients_per_chain: float
    step_size: float
    seconds: float
    compile_seconds: float
    scale: np.ndarray | None = None
    density_evaluations_per_chain: float | None = None


def _welford(carry, x):
    n, mean, m2 = carry
    n = n + 1
    delta = x - mean
    mean = mean + delta / n
    m2 = m2 + delta * (x - mean)
    return n, mean, m2


def _moments0(chains: int, dim: int, dtype) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Empty per-chain Welford moments ``(count, mean, m2)``."""
    zeros = jnp.zeros((chains, dim), dtype)
    return jnp.zeros((chains,), dtype), zeros, zeros


def _draws(advance, states, init_positions, key, num_samples, project, project_key=False):
    """Scan ``num_samples`` stored draws; ``advance(states, k) -> (states, stats)``.

    Every stored position feeds the per-chain Welford moments and ``project`` (called
    as ``project(position, key)`` with a fresh key per chain and draw when
    ``project_key``). Returns ``(projections, (n, mean, m2), stats)`` stacked over draws.
    """
    chains = init_positions.shape[0]

    def body(carry, k):
        states, mom = carry
        k_adv, k_proj = jax.random.split(k)
        states, stats = advance(states, k_adv)
        mom = jax.vmap(_welford)(mom, states.position)
        if project_key:
            proj = jax.vmap(project)(states.position, jax.random.split(k_proj, chains))
        else:
            proj = jax.vmap(project)(states.position)
        return (states, mom), (proj, stats)

    mom0 = _moments0(*init_positions.shape, init_positions.dtype)
    (_, mom), (proj, stats) = jax.lax.scan(body, (states, mom0), jax.random.split(key, num_samples))
    return proj, mom, stats


def _result(proj, mom, stats, eps, seconds, compile_s, **counts) -> SampleResult:
    """A :class:`SampleResult` from :func:`_draws`' output; ``stats[0]`` is the
    acceptance, ``stats[1]`` the divergence flags; ``counts`` gives ``nonfinite`` and
    the two gradient counts."""
    n, mean, m2 = (np.asarray(v) for v in mom)
    return SampleResult(
        projections=np.swapaxes(np.asarray(proj), 0, 1),
        mean=mean,
        var=m2 / n[:, None],
        acceptance_rate=float(np.mean(stats[0])),
        divergences=int(np.sum(stats[1])),
        step_size=float(eps),
        seconds=seconds,
        compile_seconds=compile_s,
        **counts,
    )


def _first_coordinates(x, *data):
    """The default projection: the first ``min(D, 8)`` coordinates."""
    return x[: min(x.shape[0], 8)]


def _projection(project, project_key):
    """``project``, or the first ``min(D, 8)`` coordinates when it is ``None``."""
    if project is None and project_key:
        raise ValueError("project_key=True needs a project(position, key) function")
    return project or _first_coordinates


def _check_init(init_positions, num_warmup, num_samples):
    init_positions = jnp.asarray(init_positions)
    if init_positions.ndim != 2:
        raise ValueError(
            f"init_positions must have shape (chains, D), got {tuple(init_positions.shape)}"
        )
    if init_positions.shape[0] < 1 or init_positions.shape[1] < 1:
        raise ValueError(
            "init_positions must hold at least one chain of at least one coordinate, got "
            f"shape {tuple(init_positions.shape)}"
        )
    if not bool(jnp.all(jnp.isfinite(init_positions))):
        raise ValueError("init_positions contain non-finite values")
    if int(num_samples) < 1 or int(num_warmup) < 0:
        raise ValueError(f"need num_samples >= 1, num_warmup >= 0; got {num_samples}, {num_warmup}")
    return init_positions


#: compiled sampler programs kept (least recently used dropped first)
CACHE_SIZE = 32
_programs: OrderedDict[Hashable, Any] = OrderedDict()
_stats = {"compiles": 0, "hits": 0}
_lock = threading.Lock()  # guards _programs and _stats (precompile runs in threads)
_local = threading.local()  # .compile_only: stop a driver once its run is compiled


class _Compiled(Exception):
    """Raised by :func:`_timed` under :func:`precompile` once the run is compiled."""


def _signature(args) -> tuple:
    """Hashable shapes, dtypes and shardings of a pytree of arrays."""
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((tuple(a.shape), a.dtype, a.sharding) for a in leaves)


def _timed(program, static, *args):
    """Run ``program(static, *args)`` compiled, reusing the executable of an earlier call.

    ``static`` is a hashable tuple of everything that changes the traced program but is
    not an array (the log density and projection functions, integer settings, flags);
    the arrays in ``args`` (keys, starting points, data, real-valued settings) are
    arguments of the compiled program, so calls that differ only in their values share
    one executable. At most :data:`CACHE_SIZE` executables are kept. Under
    :func:`precompile` it stops (raises :class:`_Compiled`) before running.

    Returns:
        ``(outputs, run_seconds, compile_seconds)``; ``compile_seconds`` is 0 when the
        executable was reused.
    """
    for leaf in jax.tree.leaves(args[2]):  # every driver passes (key, init, data, ...)
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float)):
            raise ValueError(
                f"data must be a pytree of arrays, got a leaf {leaf!r} of type "
                f"{type(leaf).__name__}"
            )
    args = jax.tree.map(jnp.asarray, args)
    cache_key = (program, static, _signature(args))
    with _lock:
        compiled, compile_s = _programs.get(cache_key), 0.0
        if compiled is not None:
            _stats["hits"] += 1
            _programs.move_to_end(cache_key)
    if compiled is None:
        t0 = time.perf_counter()
        compiled = jax.jit(functools.partial(program, static)).lower(*args).compile()
        compile_s = time.perf_counter() - t0
        with _lock:
            _stats["compiles"] += 1
            _programs[cache_key] = compiled
            while len(_programs) > CACHE_SIZE:
                _programs.popitem(last=False)
    if getattr(_local, "compile_only", False):
        raise _Compiled(compile_s)
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - t1, compile_s


def precompile(fn: Callable, /, *args, **kwargs) -> float | None:
    """Compile the run that ``fn(*args, **kwargs)`` would make, without running it.

    ``fn`` is a sampler driver (:func:`~widelab_bayes.sample_ghmc`,
    :func:`~widelab_bayes.sample_blackjax`, :func:`~widelab_bayes.sample_pcn`,
    :func:`~widelab_bayes.sample_elliptical_slice`) or a function that calls one, such as
    :func:`~widelab_bayes.sample_bnn`. The call proceeds until its driver has compiled
    (or found) its program in the cache of :func:`program_cache_info`, and stops there;
    a later call with the same functions, integer settings and shapes runs at once.
    XLA compiles without holding Python's global interpreter lock, so several runs
    precompiled in threads compile in parallel, and the runs can then be made one at a
    time so that their timings do not overlap. Results are those of an ordinary call.

    Args:
        fn: the driver or study function.
        *args, **kwargs: its arguments (keys and other array values do not matter, only
            their shapes).

    Returns:
        Seconds spent compiling (0.0 when the program was already cached), or ``None``
        when ``fn`` returned without reaching a driver.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_bayes import sample_ghmc
        >>> ld = lambda v: -0.5 * jnp.sum(v**2)
        >>> s = precompile(sample_ghmc, jax.random.key(0), ld, jnp.zeros((2, 3)),
        ...                num_warmup=5, num_samples=5)
        >>> s >= 0.0
        True
        >>> sample_ghmc(jax.random.key(1), ld, jnp.ones((2, 3)), num_warmup=5,
        ...             num_samples=5).compile_seconds
        0.0
    """
    before = getattr(_local, "compile_only", False)
    _local.compile_only = True
    try:
        fn(*args, **kwargs)
    except _Compiled as done:
        return float(done.args[0])
    finally:
        _local.compile_only = before
    return None


def program_cache_info() -> dict[str, int]:
    """How the compiled-program cache of the samplers has been used.

    Every driver (:func:`~widelab_bayes.sample_ghmc`, :func:`~widelab_bayes.sample_blackjax`,
    :func:`~widelab_bayes.sample_pcn`, :func:`~widelab_bayes.sample_elliptical_slice`)
    compiles its whole run once per log-density function, projection, integer and
    boolean settings and input shapes; a later call that differs only in array values
    (key, starting points, ``data``, real-valued settings such as the step size) reuses
    the executable.

    Returns:
        ``{"compiles": ..., "hits": ..., "size": ..., "max_size": ...}``: programs
        compiled and reused since the start (or :func:`clear_program_cache`), programs
        held, and the most held.

    Example:
        >>> info = program_cache_info()
        >>> sorted(info)
        ['compiles', 'hits', 'max_size', 'size']
    """
    with _lock:
        return {**_stats, "size": len(_programs), "max_size": CACHE_SIZE}


def clear_program_cache() -> None:
    """Drop every compiled sampler program and reset :func:`program_cache_info`'s counts."""
    with _lock:
        _programs.clear()
        _stats.update(compiles=0, hits=0)


def _bind(fn, data, has_data):
    """``fn`` with ``data`` appended to its arguments when the run was given data."""
    if not has_data:
        return fn
    return lambda *a: fn(*a, data)


def flat_logdensity(log_density: Callable, example_params) -> tuple[LogDensity, Callable, Callable]:
    """Wrap a pytree log density for the flat-vector samplers.

    Args:
        log_density: ``params_pytree -> scalar``.
        example_params: a params pytree with the right structure and dtypes.

    Returns:
        ``(logdensity_flat, ravel, unravel)``.
    """
    from jax.flatten_util import ravel_pytree

    _, unravel = ravel_pytree(example_params)

    def ravel(p):
        return ravel_pytree(p)[0]

    return (lambda v: log_density(unravel(v))), ravel, unravel
