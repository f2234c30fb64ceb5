"""Figures of the report sections, drawn one at a time.

Matplotlib is not thread-safe, and the report computes its sections in two threads:
:func:`add_figure` draws and embeds a figure under one lock.
"""

from __future__ import annotations

import threading

import numpy as np

_FIGURE_LOCK = threading.Lock()


def add_figure(section, make, *args, caption: str = "") -> None:
    """``section.figure(make(*args), caption)`` with no other figure drawn meanwhile."""
    with _FIGURE_LOCK:
        import matplotlib

        matplotlib.use("Agg")
        section.figure(make(*args), caption)


def _sw_figure(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ls = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.loglog(ls, [r[1] for r in rows], "o-", label="i.i.d. directions")
    ax.loglog(ls, [r[2] for r in rows], "s-", label="orthogonal directions")
    ax.set_xlabel("projections L")
    ax.set_ylabel("std of SW_2^2 estimate")
    ax.legend()
    fig.tight_layout()
    return fig


def _kl_figure(log_alpha, exact, approx):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    a1.plot(log_alpha, exact, label="exact (series / 2F2)")
    a1.plot(log_alpha, approx, "--", label="sigmoid fit (Molchanov et al.)")
    a1.set_xlabel("log alpha")
    a1.set_ylabel("KL + const")
    a1.legend()
    a2.plot(log_alpha, approx - exact)
    a2.set_xlabel("log alpha")
    a2.set_ylabel("approx - exact")
    fig.tight_layout()
    return fig


def _dropout_figure(study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for j in range(study.probabilities.shape[1]):
        ax.plot(study.sizes, study.probabilities[:, j], "o-", label=f"dropout layer {j + 1}")
    ax.set_xscale("log")
    ax.set_xlabel("dataset size N")
    ax.set_ylabel("learned p")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _successor_figure(study, env):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .successor import fit_power_law

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    s = study.sizes
    su = study.medians["successor uncertainties"]
    ax.plot(s, su, "o-", label=f"successor uncertainties (slope {study.exponent:.2f})")
    a, b = fit_power_law(s, su)
    grid = np.linspace(s.min(), s.max(), 50)
    ax.plot(grid, a * grid**b, ":", color="gray")
    eg = study.medians["epsilon-greedy"]
    ok = np.isfinite(eg)
    if ok.any():
        ax.plot(s[ok], eg[ok], "s-", label="epsilon-greedy (simulated)")
    ax.plot(s, study.uniform_median, "^--", label="uniform (analytic median)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("depth L" if env == "tree" else "size N")
    ax.set_ylabel("median episodes to first success")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
