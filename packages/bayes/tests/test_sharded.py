import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_rank_promotion", "raise")
    from widelab_bayes import BNN, Repriorised
    from widelab_bayes.networks import fcn, resnet
    from widelab_bayes.sharded import data_mesh, sharded_log_hidden_density, spread_chains
    from widelab_bayes.samplers import flat_logdensity, sample_ghmc
    assert len(jax.devices()) == 8
    x = jax.random.normal(jax.random.key(0), (16, 3))
    y = np.eye(10)[np.arange(16) % 10] - 0.1
    # the primal form (fcn, p < N) and the dual form (resnet, p > N)
    for net, form in ((fcn(4, 2, 10), "primal"), (resnet(24, 2, 10), "dual")):
        rep = Repriorised(BNN(net, x, y, noise_std=0.5))
        assert rep.form == form, (rep.form, form)
        h = rep.init(jax.random.key(1))["hidden"]
        f = jax.jit(jax.value_and_grad(sharded_log_hidden_density(rep, data_mesh())))
        v, g = f(h)
        v0, g0 = jax.jit(jax.value_and_grad(rep.log_hidden_density))(h)
        np.testing.assert_allclose(v, v0, rtol=1e-11)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g0)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    # chains spread over the 8 devices give the same run as on one device
    ld, ravel, unravel = flat_logdensity(rep.log_hidden_density, h)
    init = jnp.stack([ravel(rep.init(k)["hidden"]) for k in jax.random.split(jax.random.key(2), 8)])
    spread = spread_chains(init)
    assert len(spread.sharding.device_set) == 8
    kw = dict(num_warmup=0, num_samples=10, step_size=0.05, adapt_step_size=False)
    a = sample_ghmc(jax.random.key(3), ld, spread, **kw)
    b = sample_ghmc(jax.random.key(3), ld, init, **kw)
    np.testing.assert_allclose(a.projections, b.projections, rtol=1e-8, atol=1e-10)
    print("OK")
    """
)


@pytest.mark.slow
def test_sharded_density_and_gradient_equal_the_single_device_ones():
    """On 8 fake CPU devices (a fresh process: the device count is fixed at start-up)."""
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]


def test_uneven_split_is_a_clear_error():
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh
    from widelab_bayes import BNN, ModelError, Repriorised
    from widelab_bayes.networks import fcn
    from widelab_bayes.sharded import sharded_log_hidden_density

    rep = Repriorised(BNN(fcn(3), jnp.ones((3, 2)), jnp.ones(3), noise_std=0.1))
    mesh = Mesh(jax.devices()[:1] * 1, ("data",))
    sharded_log_hidden_density(rep, mesh)  # one shard: fine
    fake = type("M", (), {"shape": {"data": 2}})()
    with pytest.raises(ModelError, match="3 training points cannot be split evenly over 2"):
        sharded_log_hidden_density(rep, fake)
