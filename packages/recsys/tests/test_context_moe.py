import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import logsumexp
from widelab_recsys import (
    ContextMoENominator,
    nominator_from_state,
    planted_groups,
    svd_features,
)


def test_context_gate_recovers_planted_user_groups():
    """Three user types, each interacting with its own item group; the experts are
    popularity models (rank 0), so only the user gate can personalise: it must send each
    type to its own expert. Agreement with the planted types is measured on held-out
    users (the type -> expert map is the majority expert on the other half) against the
    chance level of an expert choice independent of the type, by its standard error."""
    d = planted_groups(240, 3, 8, p_in=0.5, p_out=0.02, test_fraction=0.0, seed=0)
    fu, gi = svd_features(d.train, 4)
    nom = ContextMoENominator(n_experts=3, rank=0, epochs=40, learning_rate=0.05, seed=0)
    nom.fit(d.train, user_features=fu, item_features=gi)
    gate = nom.user_gate(np.arange(240), user_features=fu)
    np.testing.assert_allclose(gate.sum(axis=1), 1.0, rtol=1e-5)
    expert = gate.argmax(axis=1)
    fit_half, held = np.arange(0, 240, 2), np.arange(1, 240, 2)
    to_expert = np.array(
        [np.bincount(expert[fit_half][d.user_group[fit_half] == c], minlength=3).argmax()
         for c in range(3)]
    )  # fmt: skip
    hit = expert[held] == to_expert[d.user_group[held]]
    freq = np.bincount(expert[held], minlength=3) / len(held)
    chance = freq[to_expert[d.user_group[held]]].mean()  # independent type and expert
    se = np.sqrt(chance * (1 - chance) / len(held))
    assert hit.mean() - chance > 5 * se, (hit.mean(), chance, se)
    assert len(set(to_expert.tolist())) == 3  # different types, different experts

    # The fused serving path: embeddings reproduce the scores; saved state round-trips.
    u, v = nom.embeddings(np.arange(5), user_features=fu)
    scores = ContextMoENominator.score(nom.params, fu[:5], nom.item_features)
    np.testing.assert_allclose(u @ v.T, np.asarray(scores)[:, :24], rtol=1e-4, atol=1e-4)
    ids, _ = nom.nominate(np.arange(5), d.train[:5], 3, user_features=fu)
    back = nominator_from_state(*nom.state())
    np.testing.assert_array_equal(
        back.nominate(np.arange(5), d.train[:5], 3, user_features=fu)[0], ids
    )
    assert back.n_experts == 3 and back.kind == "context_moe"

    # Item step: the mixture's item parameters sit on the expert axis (B[e, i]); with
    # popularity experts the new item's score g(u)·B[:, i] is linear in B[:, i], and
    # B[:, 24] must minimise the training objective with all else fixed (scipy, float64).
    s_old = np.asarray(ContextMoENominator.score(nom.params, fu, nom.item_features), np.float64)
    col = (np.random.default_rng(1).random((1, 240)) < 0.3).astype(np.float32)
    nom.partial_fit_items([24], sp.csr_matrix(col), item_features=gi[:1], user_features=fu)
    n_u = np.asarray(d.train.sum(axis=1)).ravel() + col[0]
    g64 = gate.astype(np.float64)

    def objective(b):
        s_new = g64 @ b
        fit = n_u @ logsumexp(np.hstack([s_old[:, :24], s_new[:, None]]), axis=1)
        return (fit - col[0] @ s_new) / n_u.sum() + nom.l2 * b @ b

    best = minimize(objective, np.zeros(3), method="L-BFGS-B", tol=1e-14)
    got = nom.params["B"][:, 24].astype(np.float64)
    assert objective(got) == pytest.approx(best.fun, rel=1e-5)
    np.testing.assert_allclose(got, best.x, atol=2e-3)
    assert nom.n_items == 25


def test_context_moe_settings_validated():
    with pytest.raises(ValueError, match="n_experts"):
        ContextMoENominator(n_experts=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        ContextMoENominator().user_gate([0], user_features=np.zeros((1, 2)))
