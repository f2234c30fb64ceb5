"""The samplers compile a run once per function, settings and shapes and reuse it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes import (
    clear_program_cache,
    precompile,
    program_cache_info,
    sample_ghmc,
    sample_pcn,
)
from widelab_bayes import runs as runs_module
from widelab_bayes.studies import sample_bnn

_BACKEND_COMPILES = []


def _count(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _BACKEND_COMPILES.append(duration)


jax.monitoring.register_event_duration_secs_listener(_count)


def _shifted_gaussian(x, mu):
    return -0.5 * jnp.sum((x - mu) ** 2)


def test_ghmc_reuses_its_program_and_uses_the_new_data():
    init = jnp.zeros((4, 3))
    kw = dict(num_warmup=100, num_samples=300, data=jnp.zeros(3))
    first = sample_ghmc(jax.random.key(0), _shifted_gaussian, init, **kw)
    mu = jnp.array([3.0, -2.0, 5.0])
    info = program_cache_info()
    n_backend = len(_BACKEND_COMPILES)
    second = sample_ghmc(
        jax.random.key(1), _shifted_gaussian, init, **{**kw, "data": mu}, step_size=0.2
    )
    assert len(_BACKEND_COMPILES) == n_backend  # nothing compiled at all
    after = program_cache_info()
    assert after["compiles"] == info["compiles"] and after["hits"] == info["hits"] + 1
    assert second.compile_seconds == 0.0 and first.compile_seconds > 0.0
    # the data are arguments, not constants of the first compilation: the chains find
    # the new mean (N(mu, I); 1200 draws, s.e. of the mean well under 0.2)
    np.testing.assert_allclose(second.mean.mean(0), mu, atol=0.3)
    np.testing.assert_allclose(first.mean.mean(0), np.zeros(3), atol=0.3)


def test_sample_bnn_second_call_compiles_nothing():
    kw = dict(n_data=6, chains=2, num_warmup=10, num_samples=10, noise_std=0.3)
    sample_bnn(jax.random.key(0), 4, "collapsed-ghmc", seed=0, **kw)
    n_backend = len(_BACKEND_COMPILES)
    run = sample_bnn(jax.random.key(1), 4, "collapsed-ghmc", seed=1, **kw)
    assert len(_BACKEND_COMPILES) == n_backend
    assert run.result.compile_seconds == 0.0


def _tiny_program(static, key, init, data):
    return init * static + data


def test_cache_is_bounded(monkeypatch):
    clear_program_cache()
    monkeypatch.setattr(runs_module, "CACHE_SIZE", 2)
    key, init = jax.random.key(0), jnp.ones(2)
    for static in (1.0, 2.0, 3.0, 3.0):  # three programs; the last call reuses one
        out, _, _ = runs_module._timed(_tiny_program, static, key, init, jnp.ones(2))
        np.testing.assert_array_equal(out, np.full(2, static + 1.0))
    info = program_cache_info()
    assert info == {"compiles": 3, "hits": 1, "size": 2, "max_size": 2}
    clear_program_cache()
    assert program_cache_info() == {"compiles": 0, "hits": 0, "size": 0, "max_size": 2}


def test_precompile_in_threads_compiles_without_running():
    from concurrent.futures import ThreadPoolExecutor

    clear_program_cache()
    key, init = jax.random.key(0), jnp.ones(2)
    ran = []

    def driver(static, data):
        out, _, compile_s = runs_module._timed(_tiny_program, static, key, init, data)
        ran.append(static)
        return out, compile_s

    with ThreadPoolExecutor(2) as pool:
        secs = list(pool.map(lambda s: precompile(driver, s, jnp.ones(2)), (5.0, 7.0)))
    assert ran == [] and all(s > 0.0 for s in secs)  # compiled, stopped before running
    assert program_cache_info()["compiles"] == 2
    assert precompile(driver, 5.0, jnp.ones(2)) == 0.0  # already cached
    assert precompile(lambda: None) is None  # no driver reached
    data = jnp.full(2, 2.0)
    n_backend = len(_BACKEND_COMPILES)
    out, compile_s = driver(7.0, data)  # a normal call runs again
    assert len(_BACKEND_COMPILES) == n_backend and compile_s == 0.0
    np.testing.assert_array_equal(out, np.full(2, 9.0))
    assert ran == [7.0]
    clear_program_cache()


def test_data_must_be_arrays():
    with pytest.raises(ValueError, match="data must be a pytree of arrays"):
        sample_pcn(
            jax.random.key(0),
            _shifted_gaussian,
            jnp.zeros((2, 2)),
            num_warmup=2,
            num_samples=2,
            data="not an array",
        )
