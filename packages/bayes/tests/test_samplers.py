import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_bayes.diagnostics import ess_bulk
from widelab_bayes.model import BNN
from widelab_bayes.repriorise import Repriorised
from widelab_bayes.samplers import flat_logdensity, sample_blackjax, sample_ghmc
from widelab_core import layers as L
from widelab_core.testing import float64

MU = jnp.array([1.0, -1.0, 0.0, 2.0])
SD = jnp.array([1.0, 2.0, 0.5, 3.0])


def _gauss(v):
    return -0.5 * jnp.sum(jnp.square((v - MU) / SD))


def _check_moments(res):
    """Mean and variance within 4 standard errors, the SE from the measured ESS."""
    x = res.projections  # identity projection: (chains, draws, 4)
    ess = ess_bulk(x)
    ess_sq = ess_bulk((x - np.asarray(MU)) ** 2)
    mean = x.mean(axis=(0, 1))
    var = ((x - np.asarray(MU)) ** 2).mean(axis=(0, 1))
    sd = np.asarray(SD)
    assert np.all(np.abs(mean - np.asarray(MU)) < 4 * sd / np.sqrt(ess)), (mean, ess)
    # Var[(x - mu)^2] = 2 sd^4 for a Gaussian
    assert np.all(np.abs(var - sd**2) < 4 * np.sqrt(2) * sd**2 / np.sqrt(ess_sq)), (var, ess_sq)
    # running moments agree with the stored draws
    np.testing.assert_allclose(res.mean.mean(0), mean, rtol=1e-4, atol=1e-4)


def test_ghmc_recovers_gaussian_moments_with_a_fresh_key_per_projection():
    """GHMC recovers the target's moments; ``project_key``: the stored values of a keyed
    projection's ``N(0, 1)`` draw are i.i.d. (a fresh key per chain and stored draw)."""
    init = jax.random.normal(jax.random.key(0), (8, 4)) * 3.0
    res = sample_ghmc(
        jax.random.key(1),
        _gauss,
        init,
        num_warmup=300,
        num_samples=1500,
        project=lambda v, k: jnp.concatenate([v, jax.random.normal(k, (3,))]),
        project_key=True,
    )
    assert 0.8 < res.acceptance_rate < 0.98
    assert res.divergences == 0 and res.nonfinite == 0
    assert res.gradients_per_chain == 1500
    _check_moments(res._replace(projections=res.projections[..., :4]))
    z = res.projections[..., 4:].reshape(-1, 3)
    # no key reused across chains or draws: all rows differ (single float32 values of
    # 12,000 normal draws may coincide by chance, whole rows of three do not)
    assert len(np.unique(z, axis=0)) == z.shape[0]
    assert np.all(np.abs(z.mean(0)) < 4 / np.sqrt(len(z)))
    assert np.all(np.abs(z.var(0) - 1) < 4 * np.sqrt(2 / len(z)))


def test_nonreversible_uniform_ghmc_recovers_gaussian_moments():
    """Neal's (2020) non-reversible accept/reject keeps the target."""
    init = jax.random.normal(jax.random.key(10), (8, 4)) * 3.0
    kw = dict(num_warmup=300, num_samples=1500, project=lambda v: v, persistence=0.95)
    res = sample_ghmc(jax.random.key(11), _gauss, init, u_drift=0.02, **kw)
    assert 0.8 < res.acceptance_rate < 0.98
    assert res.divergences == 0 and res.nonfinite == 0
    _check_moments(res)


def test_ghmc_scale_adaptation_on_badly_scaled_gaussian():
    """Per-chain diagonal scales approach the target's standard deviations (1e-2 .. 10),
    the moments come out right, and the adapted chains mix far better than unscaled ones."""
    mu = jnp.array([0.5, -1.0, 2.0, 0.0])
    sd = jnp.array([0.01, 0.1, 1.0, 10.0])

    def ld(v):
        return -0.5 * jnp.sum(jnp.square((v - mu) / sd))

    init = mu[None] + sd[None] * jax.random.normal(jax.random.key(12), (8, 4))
    kw = dict(num_warmup=1000, num_samples=1000, project=lambda v: v, persistence=0.9)
    res = sample_ghmc(jax.random.key(13), ld, init, adapt_scale=True, **kw)
    ratio = res.scale / np.asarray(sd)
    assert np.all((ratio > 0.3) & (ratio < 3.0)), ratio
    x = res.projections
    ess = ess_bulk(x)
    assert np.all(np.abs(x.mean(axis=(0, 1)) - np.asarray(mu)) < 4 * np.asarray(sd) / np.sqrt(ess))
    plain = sample_ghmc(jax.random.key(13), ld, init, **kw)
    assert np.all(plain.scale == 1.0)
    assert ess[-1] > 5 * ess_bulk(plain.projections)[-1]


@pytest.mark.slow
def test_blackjax_nuts_recovers_gaussian_moments():
    init = jax.random.normal(jax.random.key(2), (4, 4))
    res = sample_blackjax(
        jax.random.key(3), _gauss, init, num_warmup=200, num_samples=400, project=lambda v: v
    )
    assert res.gradients_per_chain > 400  # NUTS uses several leapfrog steps per draw
    _check_moments(res)


def test_blackjax_hmc_recovers_gaussian_moments():
    init = jax.random.normal(jax.random.key(6), (4, 4))
    for per_chain in (True, False):
        res = sample_blackjax(
            jax.random.key(7),
            _gauss,
            init,
            algorithm="hmc",
            num_integration_steps=5,
            num_warmup=200,
            num_samples=400,
            project=lambda v: v,
            per_chain_adaptation=per_chain,
        )
        assert res.gradients_per_chain >= 5 * 400
        assert res.warmup_gradients_per_chain >= 5 * 200
        _check_moments(res)


def test_nonfinite_and_divergent_proposals_are_counted_not_taken():
    def wall(v):  # density is -inf for v[0] > 1
        return jnp.where(v[0] > 1.0, -jnp.inf, -0.5 * jnp.sum(v * v))

    res = sample_ghmc(
        jax.random.key(4),
        wall,
        jnp.zeros((4, 2)),
        num_warmup=0,
        num_samples=400,
        step_size=0.8,
        adapt_step_size=False,
        project=lambda v: v,
    )
    assert res.nonfinite > 0
    assert np.all(res.projections[..., 0] <= 1.0)

    steep = lambda v: -0.5 * 1e4 * jnp.sum(v * v)
    res = sample_ghmc(
        jax.random.key(5),
        steep,
        jnp.full((2, 2), 0.01),
        num_warmup=0,
        num_samples=50,
        step_size=1.0,
        adapt_step_size=False,
    )
    assert res.divergences > 0


def test_repriorised_phi_is_standard_normal_under_the_posterior():
    """Hron et al. 2022: a-posteriori phi ~ N(0, I) exactly, at any width (float64 run)."""
    with float64():
        x = jnp.linspace(-1, 1, 6)[:, None]
        net = L.serial(L.Dense(8, W_std=1.5, b_std=0.2), L.Relu(), L.Dense(1, W_std=1.5, b_std=0.2))
        rep = Repriorised(BNN(net, x, jnp.sin(3 * x), noise_std=0.2))
        p0 = rep.init(jax.random.key(6))
        ld, ravel, unravel = flat_logdensity(rep.log_density, p0)
        init = jnp.stack([ravel(rep.init(k)) for k in jax.random.split(jax.random.key(7), 4)])
        n_phi = p0["phi"].size
        res = sample_ghmc(
            jax.random.key(8),
            ld,
            init,
            num_warmup=200,
            num_samples=1000,
            project=lambda v: v[-n_phi:],
        )
        assert res.projections.dtype == np.float64
        phi = res.projections
        ess = ess_bulk(phi)
        assert np.all(np.abs(phi.mean(axis=(0, 1))) < 4 / np.sqrt(ess))
        ess_sq = ess_bulk(phi**2)
        assert np.all(np.abs((phi**2).mean(axis=(0, 1)) - 1) < 4 * np.sqrt(2 / ess_sq))


@pytest.fixture(scope="module")
def exact_reference():
    """Exact posterior draws by rejection (Hron et al. 2020) of a tiny regression, as 8
    fixed random projections of the predictions at 25 test inputs; computed once and
    shared by every collapsed sampler's comparison."""
    from widelab_bayes.diagnostics import random_projections
    from widelab_bayes.rejection import marginalised_rejection_sample
    from widelab_bayes.studies import mlp

    with float64():
        x = np.linspace(-1.0, 1.0, 5)[:, None]
        y = np.sin(2.0 * x)
        model = BNN(mlp(8, b_std=0.5), x, y, noise_std=0.3)
        exact = marginalised_rejection_sample(jax.random.key(0), model, 40000, batch_size=20000)
        x_test = np.linspace(-1.0, 1.0, 25)[:, None]
        P = random_projections(1, 25, 8)
        f = jax.vmap(lambda p: model.apply(p, jnp.asarray(x_test))[:, 0])(exact.samples)
        assert exact.num_accepted > 500
        return x, y, np.asarray(f) @ P


@pytest.mark.parametrize(
    "method", ["collapsed-ghmc", "collapsed-nuts", "collapsed-pcn", "collapsed-elliptical"]
)
def test_collapsed_sampler_matches_exact_rejection_draws(method, exact_reference):
    """Collapsed sampling (hidden weights by MCMC on the readout-marginalised density,
    ``phi ~ N(0, I)`` drawn exactly) agrees with exact posterior draws by rejection
    (Hron et al. 2020) on every function-space projection, within standard errors."""
    from widelab_bayes.studies import sample_bnn

    x, y, ref = exact_reference
    with float64():
        run = sample_bnn(
            jax.random.key(1),
            8,
            method,
            data=(x, y),
            noise_std=0.3,
            b_std=0.5,
            chains=4,
            num_warmup=300,
            num_samples=300 if method == "collapsed-nuts" else 1500,
            thin=2,
        )
    draws = run.result.projections
    assert run.result.divergences == 0 and run.result.nonfinite == 0
    ess = ess_bulk(draws)
    var = ref.var(0)
    se = np.sqrt(var / ess + var / len(ref))
    assert np.all(np.abs(draws.mean(axis=(0, 1)) - ref.mean(0)) < 4 * se)
    # and the spread: posterior predictive variance of each projection
    ess_sq = ess_bulk((draws - ref.mean(0)) ** 2)
    tol = 4 * var * np.sqrt(2 / ess_sq + 2 / len(ref))
    assert np.all(np.abs(draws.var(axis=(0, 1)) - var) < tol)


@pytest.mark.parametrize(
    "init, kwargs, match",
    [
        (jnp.zeros(4), {}, r"shape \(chains, D\)"),
        (jnp.full((2, 4), jnp.nan), {}, "non-finite"),
        (jnp.zeros((2, 4)), {"persistence": 1.0}, "persistence"),
        (jnp.zeros((2, 4)), {"u_drift": 0.0}, "u_drift"),
        (jnp.zeros((2, 4)), {"adapt_scale": True, "num_warmup": 5}, "adapt_scale"),
    ],
)
def test_bad_ghmc_input(init, kwargs, match):
    kwargs = {"num_warmup": 1, "num_samples": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        sample_ghmc(jax.random.key(0), _gauss, init, **kwargs)


@pytest.mark.parametrize(
    "sampler, kwargs, match",
    [
        (sample_ghmc, {"project_key": True}, "project_key"),
        (sample_blackjax, {"project_key": True}, "project_key"),
        (sample_blackjax, {"algorithm": "mala"}, "algorithm"),
    ],
)
def test_bad_sampler_input(sampler, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sampler(jax.random.key(0), _gauss, jnp.zeros((2, 4)), num_warmup=1, num_samples=1, **kwargs)


def test_sampling_coordinates_of_every_method():
    """Each method's coordinates: a finite density at a prior draw, (n, k) predictions,
    and only the collapsed methods' predictions depend on the key; unknown: an error."""
    from widelab_bayes.studies import METHODS, mlp, sampling_coordinates

    x = jnp.linspace(-1.0, 1.0, 6)[:, None]
    model = BNN(mlp(4), x, jnp.sin(3 * x), noise_std=0.3)
    for method in METHODS:
        density, init_fn, predict = sampling_coordinates(method, model)
        params = init_fn(jax.random.key(0))
        assert np.isfinite(float(density(params)))
        a, b = (predict(params, x[:3], jax.random.key(k)) for k in (1, 2))
        assert a.shape == (3, 1)
        assert bool(jnp.any(a != b)) == method.startswith("collapsed")
    with pytest.raises(ValueError, match="unknown method"):
        sampling_coordinates("mala", model)
