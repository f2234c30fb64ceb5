import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from widelab_bayes.sliced_wasserstein import (
    projected_wasserstein,
    random_directions,
    sliced_wasserstein,
    sliced_wasserstein_gaussian,
    wasserstein_1d,
    wasserstein_exact,
)


def _exact_sw2_2d(x, y, n_angles=20000):
    """SW_2^2 in d = 2 by the midpoint rule over angles in [0, pi)."""
    ang = (np.arange(n_angles) + 0.5) * np.pi / n_angles
    th = np.stack([np.cos(ang), np.sin(ang)], 1)
    px, py = np.sort(th @ x.T, 1), np.sort(th @ y.T, 1)
    return float(np.mean((px - py) ** 2))


def test_zero_symmetry_and_directions():
    x = jax.random.normal(jax.random.key(0), (40, 3))
    y = x + 1.0
    k = jax.random.key(1)
    assert float(sliced_wasserstein(x, x, key=k)) == 0.0
    assert float(sliced_wasserstein(x, y, key=k)) == pytest.approx(
        float(sliced_wasserstein(y, x, key=k)), rel=1e-6
    )
    d = np.asarray(random_directions(jax.random.key(2), 7, 3, "orthogonal"))
    assert d.shape == (7, 3)
    np.testing.assert_allclose(d[:3] @ d[:3].T, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(d[3:6] @ d[3:6].T, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)


def test_wasserstein_1d_against_scipy_and_unequal_sizes():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        u, v = rng.standard_normal(13), rng.standard_normal(7) + 0.5
        assert float(wasserstein_1d(u, v, p=1)) == pytest.approx(
            stats.wasserstein_distance(u, v), rel=1e-10
        )
        w = rng.standard_normal(13)
        # repeating every atom leaves the measure unchanged
        assert float(wasserstein_1d(u, np.repeat(w, 3), p=2)) == pytest.approx(
            float(wasserstein_1d(u, w, p=2)), rel=1e-10
        )


def test_unbiased_for_both_direction_kinds():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((30, 2)) * np.array([[1.0, 3.0]])
        y = rng.standard_normal((30, 2)) + np.array([[1.0, -1.0]])
        exact = _exact_sw2_2d(x, y)
        keys = jax.random.split(jax.random.key(3), 2000)
        for kind in ("iid", "orthogonal"):
            est = jax.vmap(
                lambda k, kind=kind: sliced_wasserstein(
                    x, y, key=k, n_projections=3, directions=kind, root=False
                )
            )(keys)
            est = np.asarray(est)
            se = est.std(ddof=1) / np.sqrt(len(est))
            assert abs(est.mean() - exact) < 4 * se + 1e-9, (kind, est.mean(), exact, se)


def test_isotropic_gaussian_closed_form():
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.0, 0.0])
    s1, s2 = 1.0, 2.0
    exact = float(sliced_wasserstein_gaussian(m1, s1, m2, s2))
    assert exact == pytest.approx(np.sqrt(np.sum((m1 - m2) ** 2) / 3 + 1.0))
    kx, ky, kd = jax.random.split(jax.random.key(4), 3)
    n = 5000
    x = m1[None, :] + s1 * jax.random.normal(kx, (n, 3))
    y = m2[None, :] + s2 * jax.random.normal(ky, (n, 3))
    est = float(sliced_wasserstein(x, y, key=kd, n_projections=60, directions="orthogonal"))
    # sampling error of the empirical measures: about 0.5% relative at n = 5000 (seen over
    # seeds); a wrong closed form (e.g. without the 1/d) is off by 50%
    assert est == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_ordering_sw_w_pw(p):
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        x = rng.standard_normal((25, 4))
        y = rng.standard_normal((25, 4)) * 1.5 + 0.3
        w = wasserstein_exact(x, y, p)
        keys = jax.random.split(jax.random.key(0), 4)
        for kind in ("iid", "orthogonal"):
            kw = dict(n_projections=8, p=p, directions=kind)
            sw = jax.vmap(lambda k, kw=kw: sliced_wasserstein(x, y, key=k, **kw))(keys)
            pw = jax.vmap(lambda k, kw=kw: projected_wasserstein(x, y, key=k, **kw))(keys)
            assert np.all(np.asarray(sw) <= w + 1e-12), (sw, w)
            assert np.all(w <= np.asarray(pw) + 1e-12), (w, pw)


def test_orthogonal_variance_far_below_iid():
    kx, ky, kd = jax.random.split(jax.random.key(6), 3)
    x = jax.random.normal(kx, (100, 10))
    y = 0.5 * jax.random.normal(ky, (100, 10)) ** 2
    keys = jax.random.split(kd, 200)
    var = {}
    for kind in ("iid", "orthogonal"):
        f = jax.vmap(
            lambda k, kind=kind: sliced_wasserstein(
                x, y, key=k, n_projections=10, directions=kind, root=False
            )
        )
        var[kind] = float(np.var(np.asarray(f(keys)), ddof=1))
    # with 199 d.o.f. each, an F ratio above 2 is already significant at 1e-6
    assert var["orthogonal"] < var["iid"] / 10, var


def test_differentiable_and_jittable():
    x = jax.random.normal(jax.random.key(7), (50, 3))
    y = jax.random.normal(jax.random.key(8), (50, 3)) + 2.0
    f = jax.jit(lambda x: sliced_wasserstein(x, y, key=jax.random.key(9), n_projections=20))
    g = jax.grad(f)(x)
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).sum()) > 0
    assert float(f(x - 0.1 * g)) < float(f(x))


def test_errors():
    k = jax.random.key(0)
    x = jnp.ones((5, 2))
    with pytest.raises(ValueError, match="empty"):
        sliced_wasserstein(jnp.ones((0, 2)), x, key=k)
    with pytest.raises(ValueError, match="different dimensions"):
        sliced_wasserstein(x, jnp.ones((5, 3)), key=k)
    with pytest.raises(ValueError, match="p must be"):
        sliced_wasserstein(x, x, key=k, p=0.5)
    with pytest.raises(ValueError, match="kind"):
        sliced_wasserstein(x, x, key=k, directions="sobol")
    with pytest.raises(ValueError, match="equal sample sizes"):
        projected_wasserstein(x, jnp.ones((4, 2)), key=k)
    with pytest.raises(ValueError, match="n_projections"):
        random_directions(k, 0, 2)
    with pytest.raises(ValueError, match="standard deviations"):
        sliced_wasserstein_gaussian(jnp.zeros(2), -1.0, jnp.zeros(2), 1.0)


def test_sw_command(tmp_path, capsys):
    from widelab_bayes.approx_report import configure

    parser = argparse.ArgumentParser()
    configure(parser.add_subparsers())
    xs = np.random.default_rng(0).standard_normal((20, 3))
    np.save(tmp_path / "x.npy", xs)
    np.savetxt(tmp_path / "y.csv", xs + 1.0, delimiter=",")
    args = parser.parse_args(
        ["sw", "--x", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.csv"), "--projections", "6"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "SW_2" in out and "PW_2" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,nan,6\n")
    args = parser.parse_args(["sw", "--x", str(bad), "--y", str(tmp_path / "y.csv")])
    with pytest.raises(SystemExit, match="row 2"):
        args.func(args)
