import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import logsumexp
from widelab_recsys import LinearNominator, TwoTowerNominator


def test_linear_item_step_is_the_restricted_optimum():
    """Adding items 10, 11 and refitting item 3: their (q_i, b_i) must minimise the training
    objective with every other parameter fixed, written here in float64 from the fitted
    matrix (n_u: each user's fitted interactions plus the new items' rows) and solved by
    scipy's L-BFGS-B."""
    rng = np.random.default_rng(0)
    n_users, r, l2 = 40, 2, 1e-3
    m = sp.csr_matrix((rng.random((n_users, 10)) < 0.3).astype(np.float32))
    fu = rng.normal(size=(n_users, 3)).astype(np.float32)
    gi = rng.normal(size=(12, 2)).astype(np.float32)
    nom = LinearNominator(rank=r, l2=l2, epochs=3, batch_size=16)
    nom.fit(m, user_features=fu, item_features=gi[:10])
    old = {k: np.asarray(v).copy() for k, v in nom.params.items()}
    ids = np.array([3, 10, 11])
    cols = (rng.random((3, n_users)) < 0.4).astype(np.float32)
    nom.partial_fit_items(ids, sp.csr_matrix(cols), item_features=gi[ids], user_features=fu)
    assert nom.n_items == 12

    eu = fu.astype(np.float64) @ old["A"].astype(np.float64)  # (users, r)
    s_fixed = eu @ old["Q"][:10].T.astype(np.float64) + old["b"][:10]
    keep = np.setdiff1d(np.arange(10), ids)
    n_u = np.asarray(m.sum(axis=1)).ravel() + cols[1:].sum(axis=0)
    y = cols.T.astype(np.float64)

    def objective(theta):
        th = theta.reshape(3, r + 1)
        s_new = eu @ th[:, :r].T + th[:, r]
        s_all = np.hstack([s_fixed[:, keep], s_new])
        fit = n_u @ logsumexp(s_all, axis=1) - np.sum(y * s_new)
        return fit / n_u.sum() + l2 * np.sum(theta**2)

    best = minimize(objective, np.zeros(3 * (r + 1)), method="L-BFGS-B", tol=1e-14)
    got = np.hstack([nom.params["Q"][ids], nom.params["b"][ids, None]]).ravel()
    assert objective(got) == pytest.approx(best.fun, rel=1e-5)
    np.testing.assert_allclose(got, best.x, atol=2e-3)
    # everything else is unchanged
    np.testing.assert_array_equal(nom.params["A"], old["A"])
    np.testing.assert_array_equal(nom.params["Q"][keep], old["Q"][keep])
    # the new items can be nominated (pool-local ids 10 and 11)
    ids_out, _ = nom.nominate(np.arange(n_users), None, 12, user_features=fu)
    assert {10, 11} <= set(ids_out.ravel().tolist())

    with pytest.raises(ValueError, match="contiguously from 12"):
        nom.partial_fit_items(
            [13], sp.csr_matrix((1, n_users)), item_features=gi[:1], user_features=fu
        )
    with pytest.raises(ValueError, match="needs user_features"):
        nom.partial_fit_items([3], sp.csr_matrix((1, n_users)))


def test_two_tower_item_step_is_the_restricted_optimum():
    """The two-tower model's item embedding is its tower's output (fixed weights), so the
    item step fits the biases ``b_i`` of refitted item 3 and new items 10, 11: they must
    minimise the training objective with both towers and every other bias fixed, written
    here in float64 from the towers' weights and solved by scipy's L-BFGS-B."""
    rng = np.random.default_rng(1)
    n_users, l2 = 40, 1e-3
    m = sp.csr_matrix((rng.random((n_users, 10)) < 0.3).astype(np.float32))
    fu = rng.normal(size=(n_users, 3)).astype(np.float32)
    gi = rng.normal(size=(12, 2)).astype(np.float32)
    nom = TwoTowerNominator(rank=2, hidden=4, l2=l2, epochs=3, batch_size=16)
    nom.fit(m, user_features=fu, item_features=gi[:10])
    old = {k: np.asarray(v, np.float64).copy() for k, v in nom.params.items()}
    ids = np.array([3, 10, 11])
    cols = (rng.random((3, n_users)) < 0.4).astype(np.float32)
    nom.partial_fit_items(ids, sp.csr_matrix(cols), item_features=gi[ids], user_features=fu)
    assert nom.n_items == 12

    def tower(x, w0, b0, w1):
        return np.maximum(x.astype(np.float64) @ old[w0] + old[b0], 0.0) @ old[w1]

    eu, ei = tower(fu, "Wu0", "bu0", "Wu1"), tower(gi, "Wi0", "bi0", "Wi1")  # all 12 items
    keep = np.setdiff1d(np.arange(10), ids)
    s_keep = eu @ ei[keep].T + old["b"][keep]
    dot_new = eu @ ei[ids].T
    n_u = np.asarray(m.sum(axis=1)).ravel() + cols[1:].sum(axis=0)
    y = cols.T.astype(np.float64)

    def objective(b_new):
        s_new = dot_new + b_new
        fit = n_u @ logsumexp(np.hstack([s_keep, s_new]), axis=1) - np.sum(y * s_new)
        return fit / n_u.sum() + l2 * np.sum(b_new**2)

    best = minimize(objective, np.zeros(3), method="L-BFGS-B", tol=1e-14)
    got = np.asarray(nom.params["b"], np.float64)[ids]
    assert objective(got) == pytest.approx(best.fun, rel=1e-5)
    np.testing.assert_allclose(got, best.x, atol=2e-3)
    # the towers and the other biases are unchanged
    for k in ("Wu0", "bu0", "Wu1", "Wi0", "bi0", "Wi1"):
        np.testing.assert_array_equal(nom.params[k], old[k].astype(np.float32))
    np.testing.assert_array_equal(nom.params["b"][keep], old["b"][keep].astype(np.float32))
