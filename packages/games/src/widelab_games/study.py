"""The audit sweep: recommender type x dimension x temperature x number of producers.

Hron et al. (2023), Section 3: fit each recommender, build the exposure game from its user
embeddings, find local Nash equilibria by tau-continuation with many restarts, keep the
profiles that pass the second-order test, estimate epsilon by best-response ascent, and
record the audit metrics of :mod:`.audit`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from .audit import audit_profile
from .data import RatingData
from .embeddings import Embeddings, demand_users, fit_embeddings
from .game import make_game
from .secondorder import EQUILIBRIUM, second_order_test
from .solve import _rng, best_response_gains, continuation


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Settings of :func:`run_sweep`.

    Attributes:
        models: recommender types (``"nmf"``, ``"pmf"``, ``"two_tower"``).
        dims: embedding dimensions.
        taus: strictly decreasing temperatures (the continuation path).
        ns: numbers of producers.
        n_restarts: restarts per (model, dim, n).
        max_steps: ascent steps per temperature.
        regs: regularisation grid (None = each model's default, cross-validated).
        n_folds: cross-validation folds.
        embed_steps: optimisation steps of the recommender (None = default).
        eps_starts: best-response starts per producer for the epsilon estimate.
        eps_steps: best-response ascent steps.
        seed: base seed.
    """

    models: Sequence[str] = ("nmf", "pmf", "two_tower")
    dims: Sequence[int] = (3,)
    taus: Sequence[float] = (1.0, 0.3, 0.1, 0.03)
    ns: Sequence[int] = (10,)
    n_restarts: int = 4
    max_steps: int = 1000
    regs: Sequence[float] | None = None
    n_folds: int = 3
    embed_steps: int | None = None
    eps_starts: int = 3
    eps_steps: int = 150
    seed: int = 0


def solve_and_audit(
    users: np.ndarray,
    n: int,
    taus: Sequence[float],
    *,
    key,
    n_restarts: int = 4,
    max_steps: int = 1000,
    user_groups=None,
    items=None,
    item_groups=None,
    eps_starts: int = 3,
    eps_steps: int = 150,
) -> list[dict]:
    """Continuation solve of one game along ``taus`` and the audit of what it finds.

    Metrics are averaged over the restarts that pass the second-order test (all
    restarts if none does; ``n_local_nash`` says which). Epsilon is the largest
    best-response gain at the first equilibrium found.

    Args:
        users: ``(m, d)`` demand support (uniform weights).
        n: number of producers.
        taus: decreasing temperatures.
        key: JAX random key or NumPy generator.
        n_restarts: restarts.
        max_steps: ascent steps per temperature.
        user_groups: optional labels for targeting metrics.
        items: optional catalogue item embeddings.
        item_groups: optional item labels for neighbourhood metrics.
        eps_starts: best-response starts per producer.
        eps_steps: best-response ascent steps.

    Returns:
        One row (dict) per temperature.
    """
    k_solve, k_eps = _rng(key, 0), _rng(key, 1)
    game = make_game(users, n, taus[0])
    rows = []
    for res in continuation(game, taus, key=k_solve, n_restarts=n_restarts, max_steps=max_steps):
        g = game.with_tau(res.tau)
        status = [second_order_test(g, p).status for p in res.profiles]
        ok = [i for i, st in enumerate(status) if st == EQUILIBRIUM]
        use = ok or list(range(len(status)))
        mets = [
            audit_profile(
                g, res.profiles[i], user_groups=user_groups, items=items, item_groups=item_groups
            )
            for i in use
        ]
        row = {k: float(np.mean([m[k] for m in mets])) for k in mets[0]}
        eps = best_response_gains(
            g, res.profiles[use[0]], key=k_eps, n_starts=eps_starts, steps=eps_steps
        )
        row.update(
            n=n,
            tau=res.tau,
            converged=int(res.converged.sum()),
            n_local_nash=len(ok),
            restarts=len(status),
            epsilon=float(eps.max()),
        )
        rows.append(row)
    return rows


def run_sweep(
    data: RatingData,
    config: SweepConfig = SweepConfig(),
    *,
    progress: Callable | None = None,
) -> tuple[list[dict], dict[tuple[str, int], Embeddings]]:
    """Run the audit sweep of Hron et al. (2023), Section 3, on one rating set.

    Args:
        data: ratings and group labels.
        config: what to sweep.
        progress: optional wrapper for the (model, dim, n) loop (e.g. a tqdm factory
            taking an iterable and returning one).

    Returns:
        ``(rows, fitted)``: one row per (model, dim, n, tau) with the audit metrics, and
        the fitted embeddings by ``(model, dim)``.
    """
    combos = [(m, d, n) for m in config.models for d in config.dims for n in config.ns]
    it = progress(combos) if progress is not None else combos
    fitted: dict[tuple[str, int], Embeddings] = {}
    rows = []
    key = np.random.default_rng(config.seed)
    for model, dim, n in it:
        if (model, dim) not in fitted:
            fitted[(model, dim)] = fit_embeddings(
                data.ratings,
                model,
                dim,
                regs=config.regs,
                n_folds=config.n_folds,
                seed=config.seed,
                steps=config.embed_steps,
            )
        emb = fitted[(model, dim)]
        users, kept = demand_users(emb)
        ug = None if data.user_groups is None else np.asarray(data.user_groups)[kept]
        sub = np.random.default_rng(key.integers(2**63))
        for row in solve_and_audit(
            users,
            n,
            config.taus,
            key=sub,
            n_restarts=config.n_restarts,
            max_steps=config.max_steps,
            user_groups=ug,
            items=emb.items,
            item_groups=data.item_groups,
            eps_starts=config.eps_starts,
            eps_steps=config.eps_steps,
        ):
            rows.append({"model": model, "dim": dim, "val_rmse": emb.val_rmse, **row})
    return rows, fitted


TAU_PANELS = (
    ("mean_pairwise_cos", "mean pairwise cosine of content"),
    ("cos_to_mean", "cosine to mean user direction"),
    ("rating", "normalised rating (exposure-weighted)"),
    ("rating_gap", "user-group rating gap"),
)


TARGETING_PANELS = (
    ("exposure_ratio[1]", "exposure share from group 1 / its population share"),
    ("rating[0]", "normalised rating, group 0"),
    ("rating[1]", "normalised rating, group 1"),
    ("nearest_item_cos", "cosine to the nearest catalogue item"),
)


def plot_tau_sweep(rows: list[dict], panels=TAU_PANELS):
    """Figure: audit metrics against ``tau`` (log axis), one line per (model, dim, n).

    Args:
        rows: output of :func:`run_sweep`.
        panels: ``(metric, title)`` pairs to draw (missing metrics are skipped).

    Returns:
        A matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in panels if any(p[0] in r for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    groups = sorted({(r["model"], r["dim"], r["n"]) for r in rows})
    for ax, (metric, title) in zip(axes[0], panels):
        for gkey in groups:
            sel = sorted(
                (r for r in rows if (r["model"], r["dim"], r["n"]) == gkey and metric in r),
                key=lambda r: r["tau"],
            )
            ax.plot(
                [r["tau"] for r in sel],
                [r[metric] for r in sel],
                marker="o",
                label=f"{gkey[0]} d={gkey[1]} n={gkey[2]}",
            )
        ax.set_xscale("log")
        ax.set_xlabel("tau")
        ax.set_title(title, fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
