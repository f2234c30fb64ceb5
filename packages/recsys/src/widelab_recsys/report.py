"""The recsys section of ``widelab report``: the two pool studies and the bandit study."""

from __future__ import annotations

import numpy as np
from widelab_core.command import ReportContext, ReportSection


def recsys_report(ctx: ReportContext) -> ReportSection:
    """Run the studies on planted data (sizes shrink in quick mode) and build the section.

    Args:
        ctx: the report context (``quick``, ``seed``, progress bars).

    Returns:
        The :class:`ReportSection`.
    """
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .bandits import simulate_regret
    from .planted import planted_groups
    from .studies import independent_vs_aligned_study, pool_allocation_study

    q = ctx.quick
    sec = ReportSection("recsys: two-stage recommenders")
    sec.text(
        "Two-stage recommenders after Hron, Krauth, Jordan & Kilbertus (NeurIPS 2021): "
        "nominators restricted to item pools pass candidates to a ranker. Precision@K is "
        "hits/K (implicit's 'precision' divides by min(K, |relevant|)); recall@K is "
        "hits/|relevant|."
    )
    bar = ctx.bar(total=2 if q else 3, desc="recsys")

    # Study 1 (full mode only: it fits two more two-stage systems).
    if q:
        sec.text(
            "Study 1 (independent nominators vs aligned pools) runs in full mode only "
            "(widelab report without --quick)."
        )
    else:
        s1 = independent_vs_aligned_study(n_users=600, items_per_group=40, seed=ctx.seed)
        bar.update(1)
        rows = [
            [name, s1[name].precision, s1[name].recall]
            for name in ("independent_mixed", "aligned", "uniform_random")
        ]
        sec.table(
            ["system", "precision@5", "recall@5"],
            rows,
            "Study 1: popularity nominators trained independently on pools that mix the 4 "
            f"planted groups serve only the most popular group (share {s1['majority_share']:.3f} "
            "of users): on par with uniformly random; the same nominators on aligned pools are "
            "near perfect.",
        )
        for label, system in (
            ("independent", "independent_mixed"),
            ("aligned", "aligned"),
            ("random", "uniform_random"),
        ):
            sec.metric(
                f"study1 precision@5 {label}", s1[system].precision, unit="1", better="higher"
            )

    # Study 2: learned pools.
    data = planted_groups(
        400 if q else 800,
        8,
        25,
        p_in=0.3,
        p_out=0.01,
        test_fraction=0.3,
        seed=ctx.seed,
    )
    s2 = pool_allocation_study(
        data,
        moe_epochs=20 if q else 60,
        ranker_epochs=8 if q else 20,
        seed=ctx.seed,
    )
    bar.update(1)
    names = list(s2["metrics"])
    prec = [s2["metrics"][n].precision for n in names]
    rec = [s2["metrics"][n].recall for n in names]
    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    ax[0].bar(names, prec, color="#557")
    ax[0].set_title("precision@10")
    ax[1].bar(names, rec, color="#a75")
    ax[1].set_title("recall@10")
    fig.tight_layout()
    sec.figure(
        fig,
        "Study 2: 8 planted item groups, 4 rank-1 linear nominators without item bias "
        "(each can order its pool in only two ways), MLP ranker; pools "
        "allocated at random, by k-means on SVD item features, or learned by a mixture of "
        "experts.",
    )
    sec.table(
        ["allocation", "precision@10", "recall@10", "ARI", "completeness"],
        [
            [
                n,
                s2["metrics"][n].precision,
                s2["metrics"][n].recall,
                s2["ari"][n],
                s2["completeness"][n],
            ]
            for n in names
        ],
        "ARI / completeness against the planted groups (completeness 1: every group inside "
        "one pool).",
    )
    for n in names:
        sec.metric(
            f"study2 precision@10 {n}",
            s2["metrics"][n].precision,
            summary=n != "kmeans",
            unit="1",
            better="higher",
        )
    sec.metric(
        "study2 completeness learned", s2["completeness"]["learned"], unit="1", better="higher"
    )

    # Bandits: one arm a round, then slates of K = 3 arms (the same instances and seeds).
    rounds, seeds, k_slate = (1000, 16, 3) if q else (5000, 32, 3)
    runs = {
        1: simulate_regret(jax.random.key(ctx.seed), n_seeds=seeds, rounds=rounds),
        k_slate: simulate_regret(
            jax.random.key(ctx.seed), n_seeds=seeds, rounds=rounds, slate=k_slate
        ),
    }
    bar.update(1)
    bar.close()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharex=True)
    t = np.arange(1, rounds + 1)
    for ax, (k, r) in zip(axes, runs.items(), strict=True):
        for name, colour in (("single", "#444"), ("naive", "#c33"), ("sync", "#36c")):
            cum = np.cumsum(r[name], axis=1)
            mean = cum.mean(axis=0)
            se = cum.std(axis=0, ddof=1) / np.sqrt(cum.shape[0])
            ax.plot(t, mean, color=colour, label=name)
            ax.fill_between(t, mean - se, mean + se, color=colour, alpha=0.2)
        ax.set_title("one arm a round" if k == 1 else f"slates of K = {k} arms")
        ax.set_xlabel("round")
    axes[0].set_ylabel("cumulative (slate) regret")
    axes[0].legend()
    fig.tight_layout()
    sec.figure(
        fig,
        "Two-stage LinUCB, 100 arms, d = 20, 10 nominators on 5-dim projections, each "
        "nominating its arm of highest UCB, ranker warm-started on 200 observations (mean "
        "± SE over seeds). Left: the ranker serves one arm; the naive system deadlocks "
        "(linear regret) and synchronisation restores sublinear regret. Right: the ranker "
        f"serves a slate of the {k_slate} nominees of highest UCB and observes each arm's "
        f"reward; regret is against the best {k_slate} arms. Serving more arms does not "
        "break the naive deadlock; synchronised slates keep sublinear regret, like "
        "single-stage LinUCB slates (which start without the ranker's warm-start "
        "observations).",
    )
    tenth = rounds // 10
    rows = []
    for k, r in runs.items():
        row = [k]
        for name in ("single", "naive", "sync"):
            per_seed = r[name][:, -tenth:].mean(axis=1)
            mean, se = float(per_seed.mean()), float(per_seed.std(ddof=1) / np.sqrt(seeds))
            row.append(f"{mean:.4f} ± {se:.4f}")
            label = "" if k == 1 else f" slate K={k}"
            sec.metric(
                f"bandit{label} last-10% regret/round {name}",
                mean,
                unit="regret per round",
                better="lower",
                se=se,
                summary=k == 1,
            )
        rows.append(row)
    sec.table(
        ["slate size K", "single-stage", "naive two-stage", "synchronised"],
        rows,
        f"Regret per round over the last 10% of rounds (slate regret for K > 1), mean ± SE "
        f"over {seeds} seeds.",
    )
    return sec
