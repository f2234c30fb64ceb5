"""The ``widelab games`` command end to end on small synthetic data."""

import json

import jax.numpy as jnp
import numpy as np
from widelab_core.cli import main
from widelab_games import (
    demand_users,
    fit_embeddings,
    load_ratings,
    make_game,
    riemannian_gradients,
    utilities,
)
from widelab_games.cli import command


def test_command_registered():
    assert command.name == "games" and command.run is not None and command.report is not None


def test_solve_writes_equilibria(tmp_path, capsys):
    rc = main(
        ["games", "solve", "--size", "60,40", "--regs", "0.1", "--n", "4", "--taus", "1,0.3"]
        + ["--restarts", "2", "--max-steps", "300", "--out", str(tmp_path)]
    )
    assert rc == 0
    out = json.loads((tmp_path / "equilibria.json").read_text())
    assert [r["tau"] for r in out["results"]] == [1.0, 0.3]
    first = out["results"][0]
    assert len(first["profiles"]) == 2 and len(first["profiles"][0]) == 4
    assert "local_nash" in capsys.readouterr().out
    # Check the written profiles against the game rebuilt from the same data and settings.
    data = load_ratings("synthetic", seed=0, size=(60, 40))
    users, _ = demand_users(fit_embeddings(data.ratings, "pmf", 3, regs=[0.1], seed=0))
    rng = np.random.default_rng(0)
    n_nash = 0
    for res in out["results"]:
        game = make_game(users, 4, res["tau"])
        for s, status, u in zip(res["profiles"], res["status"], res["utilities"]):
            s = np.asarray(s, np.float32)
            np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
            u0 = np.asarray(utilities(game, jnp.asarray(s)))
            np.testing.assert_allclose(u0, u, rtol=1e-4, atol=1e-6)
            assert abs(u0.sum() - 1.0) < 1e-5
            grad = np.linalg.norm(np.asarray(riemannian_gradients(game, jnp.asarray(s))), axis=1)
            if status != "local_nash":
                continue
            n_nash += 1
            # critical (the solver's rule: tau * ||grad|| <= 1e-4), and no producer gains by
            # a small unilateral move along the sphere beyond the first-order bound
            assert np.all(res["tau"] * grad <= 1e-4 + 1e-6), grad
            step = 0.05
            for i in range(len(s)):
                for _ in range(6):
                    v = rng.normal(size=s.shape[1])
                    v -= (v @ s[i]) * s[i]
                    moved = s.copy()
                    moved[i] = s[i] + step * v / np.linalg.norm(v)
                    moved[i] /= np.linalg.norm(moved[i])
                    ui = float(utilities(game, jnp.asarray(moved))[i])
                    assert ui <= u0[i] + step * grad[i] + 1e-5, (res["tau"], i, ui, u0[i])
    assert n_nash >= 1


def test_audit_writes_table_and_figure(tmp_path):
    rc = main(
        ["games", "audit", "--size", "60,40", "--regs", "0.1", "--models", "pmf"]
        + ["--ns", "4", "--taus", "1,0.3", "--restarts", "2", "--max-steps", "300"]
        + ["--out", str(tmp_path)]
    )
    assert rc == 0
    rows = json.loads((tmp_path / "audit.json").read_text())
    assert [r["tau"] for r in rows] == [1.0, 0.3]
    assert (tmp_path / "tau_sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_exit_code(tmp_path, capsys):
    assert main(["games", "solve", "--data", "movielens", "--out", str(tmp_path)]) == 2
    assert "needs a path" in capsys.readouterr().err
    rc = main(["games", "solve", "--taus", "0.1,1", "--regs", "0.1", "--size", "30,20"])
    assert rc == 2
    assert "strictly decreasing" in capsys.readouterr().err
    assert not (tmp_path / "equilibria.json").exists()
