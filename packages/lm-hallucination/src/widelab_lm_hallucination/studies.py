"""Scaling studies: hallucination rate against model size, epochs, data fraction, compute.

Hron et al. (2024, Sec. 3) train a family of LMs on one KG and track the rate on
seen facts as models grow and train longer; they find a 5% rate needs about an order
of magnitude more compute than the compute-optimal allocation of Hoffmann et al.
(2022). Here: :func:`size_epoch_study` trains each size once and evaluates at several
epoch counts along the way (each rate with its Wilson score interval and Agresti-Coull
standard error, as the grid cells of :mod:`.grid`); :func:`fit_rate_vs_compute` fits
``log rate = a + b log C`` on the compute frontier (the lowest rate reached at or below
each compute); :func:`compute_for_rate` inverts it; :func:`chinchilla_compute` is the
compute of the Chinchilla allocation ``N = D / 20`` for ``D`` training tokens
(Hoffmann et al. 2022, Table 3: about 20 tokens per parameter, ``C = 6 N D``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from .corpus import FactStream, Tokenizer, encode_kg
from .hallucination import hallucination_rate, is_hallucination
from .intervals import agresti_coull_se, wilson_interval
from .kg import KGSplit
from .model import LMConfig, flops_per_token, param_counts
from .train import TrainConfig, train


@dataclasses.dataclass(frozen=True)
class StudyPoint:
    """One evaluation of one model at one point of training.

    Attributes:
        d_model: width; n_params: non-embedding parameters; epochs: epochs trained;
        steps: optimizer steps; compute: training FLOPs (``flops_per_token * tokens``);
        seen / seen_low / seen_high: greedy rate on seen queries and its 95% Wilson
        score interval (:func:`~widelab_lm_hallucination.wilson_interval`; one greedy
        output per query, so the count is binomial); unseen: greedy rate on unseen
        queries (NaN when there are none); fraction: share of the training KG used;
        seen_se: Agresti-Coull standard error of ``seen``
        (:func:`~widelab_lm_hallucination.agresti_coull_se`: positive at rates 0 and 1,
        where the Wald ``sqrt(p (1 - p) / n)`` is 0; NaN when not recorded);
        n_seen: seen queries evaluated.
    """

    d_model: int
    n_params: int
    epochs: float
    steps: int
    compute: float
    seen: float
    seen_low: float
    seen_high: float
    unseen: float
    fraction: float = 1.0
    seen_se: float = float("nan")
    n_seen: int = 0


def train_with_evals(
    cfg: LMConfig,
    tc: TrainConfig,
    split: KGSplit,
    tok: Tokenizer,
    eval_epochs: Sequence[float],
    *,
    fraction: float = 1.0,
    max_queries: int | None = None,
    on_point: Callable[[StudyPoint], None] | None = None,
):
    """Train one model and evaluate the greedy rate each time an epoch mark is passed.

    ``tc.steps`` is replaced by the steps needed for ``max(eval_epochs)`` epochs. The
    seen rate comes with its Wilson score interval (Brown, Cai & DasGupta 2001, Eq. 4)
    and Agresti-Coull standard error (Agresti & Coull 1998), the unseen rate alone.

    Returns:
        ``(points, train_result)``.
    """
    train_kg = split.train if fraction >= 1.0 else split.train.fraction(fraction, seed=tc.seed)
    stream = FactStream(encode_kg(tok, train_kg), cfg.seq_len, tc.batch_size, tc.seed)
    rows_per_epoch = len(stream.epoch_rows(0))
    marks = sorted(eval_epochs)
    steps = max(1, math.ceil(marks[-1] * rows_per_epoch / tc.batch_size))
    tc = dataclasses.replace(tc, steps=steps)
    seen = train_kg.queries()
    if max_queries is not None:
        seen = seen[:max_queries]
    unseen = list(split.unseen[:max_queries] if max_queries else split.unseen)
    n_params = param_counts(cfg)["non_embedding"]
    fpt = flops_per_token(cfg)
    points: list[StudyPoint] = []
    pending = list(marks)

    def cb(state, loss):
        ep = state.step * tc.batch_size / rows_per_epoch
        if pending and (ep >= pending[0] - 1e-9 or state.step == steps):
            while pending and ep >= pending[0] - 1e-9:
                pending.pop(0)
            if state.step == steps:
                pending.clear()
            _, gen = hallucination_rate(cfg, state.params, tok, split.full, seen, n_boot=1)
            flags = is_hallucination(split.full, gen.queries, gen.objects, gen.finished)
            k, n = int(flags.sum()), len(flags)
            low, high = wilson_interval(k, n)
            un = float("nan")
            if unseen:
                un = hallucination_rate(cfg, state.params, tok, split.full, unseen, n_boot=10)[
                    0
                ].rate
            p = StudyPoint(
                cfg.d_model,
                n_params,
                ep,
                state.step,
                fpt * state.step * tc.batch_size * cfg.seq_len,
                k / n,
                float(low),
                float(high),
                un,
                fraction,
                float(agresti_coull_se(k, n)),
                n,
            )
            points.append(p)
            if on_point is not None:
                on_point(p)

    result = train(cfg, tc, stream, callback=cb)
    return points, result


def size_epoch_study(
    split: KGSplit,
    tok: Tokenizer,
    configs: Sequence[LMConfig],
    eval_epochs: Sequence[float],
    tc: TrainConfig,
    *,
    fractions: Sequence[float] = (1.0,),
    max_queries: int | None = None,
    progress: Callable | None = None,
) -> list[StudyPoint]:
    """Rate against size, epochs and data fraction: one training run per (size, fraction).

    Each size is evaluated along its one learning-rate schedule (cheaper than
    :func:`~widelab_lm_hallucination.size_epoch_grid`, whose cells each train to the end
    of their own schedule); every point carries the seen rate's Wilson interval and
    Agresti-Coull standard error (see :func:`train_with_evals`).

    Returns:
        The :class:`StudyPoint` of every (size, fraction, epoch mark).
    """
    out: list[StudyPoint] = []
    runs = [(c, f) for f in fractions for c in configs]
    it = progress(runs, desc="lm sizes") if progress else runs
    for cfg, frac in it:
        pts, _ = train_with_evals(
            cfg, tc, split, tok, eval_epochs, fraction=frac, max_queries=max_queries
        )
        out.extend(pts)
    return out


@dataclasses.dataclass(frozen=True)
class ComputeFit:
    """``log rate = intercept + slope * log compute`` on the compute frontier."""

    intercept: float
    slope: float
    frontier: tuple[tuple[float, float], ...]

    def rate(self, compute: float) -> float:
        """Fitted rate at ``compute`` FLOPs."""
        return float(math.exp(self.intercept + self.slope * math.log(compute)))


def fit_rate_vs_compute(points: Sequence[StudyPoint], floor: float = 1e-3) -> ComputeFit:
    """Least-squares power law on the frontier (running minimum of the rate over compute).

    Rates are floored at ``floor`` before the log. Needs two frontier points.

    Raises:
        ValueError: fewer than two distinct frontier points.
    """
    pts = sorted((p.compute, max(p.seen, floor)) for p in points)
    frontier, best = [], float("inf")
    for c, r in pts:
        if r < best:
            frontier.append((c, r))
            best = r
    if len(frontier) < 2:
        raise ValueError("fit_rate_vs_compute: need two frontier points with falling rates")
    x = np.log([c for c, _ in frontier])
    y = np.log([r for _, r in frontier])
    slope, intercept = np.polyfit(x, y, 1)
    return ComputeFit(float(intercept), float(slope), tuple(frontier))


def compute_for_rate(fit: ComputeFit, rate: float = 0.05) -> float:
    """Compute at which the fitted frontier reaches ``rate`` (inf if it never falls)."""
    if fit.slope >= 0:
        return float("inf")
    return float(math.exp((math.log(rate) - fit.intercept) / fit.slope))


def chinchilla_compute(tokens: float, tokens_per_param: float = 20.0) -> dict[str, float]:
    """Chinchilla allocation for ``tokens`` of data: ``N = D / 20``, ``C = 6 N D``."""
    n = tokens / tokens_per_param
    return {"n_params": n, "compute": 6.0 * n * tokens}


def chinchilla_comparison(
    fit: ComputeFit, tokens: float, measured: float, rate: float = 0.05
) -> dict:
    """The compute for ``rate`` against the Chinchilla allocation, with a verdict on
    whether the comparison means anything.

    It does not when the Chinchilla model for ``tokens`` has under a million
    parameters (the rule was fitted on 10^7-10^10, Hoffmann et al. 2022), or when the
    fit must extrapolate more than ten times beyond the ``measured`` compute.

    Returns:
        ``compute_for_rate``, ``chinchilla_compute``, ``chinchilla_params``, ``ratio``
        (NaN when not meaningful), ``meaningful`` and ``reason`` (empty when meaningful).

    Example:
        >>> fit = ComputeFit(0.0, -0.5, ())
        >>> chinchilla_comparison(fit, tokens=2e3, measured=1e3)["meaningful"]
        False
    """
    c_rate = compute_for_rate(fit, rate)
    chin = chinchilla_compute(tokens)
    reasons = []
    if chin["n_params"] < 1e6:
        reasons.append(
            f"the Chinchilla model for {tokens:.3g} tokens has {chin['n_params']:.3g} "
            "parameters, far below the 1e7-1e10 the rule was fitted on"
        )
    if not math.isfinite(c_rate):
        reasons.append(f"the fitted rate never falls to {rate}")
    elif c_rate > 10 * measured:
        reasons.append(
            f"the {rate:.0%} point ({c_rate:.3g} FLOPs) lies more than ten times beyond the "
            f"largest measured compute ({measured:.3g} FLOPs)"
        )
    ok = not reasons
    return {
        "compute_for_rate": c_rate,
        "chinchilla_compute": chin["compute"],
        "chinchilla_params": chin["n_params"],
        "ratio": c_rate / chin["compute"] if ok else float("nan"),
        "meaningful": ok,
        "reason": "; ".join(reasons),
    }


def rate_table(points: Sequence[StudyPoint]) -> list[list]:
    """Rows ``[d_model, params, epochs, compute, seen, se, low, high, unseen, fraction]``
    (``se`` Agresti-Coull, ``low`` / ``high`` the 95% Wilson interval)."""
    return [
        [
            p.d_model,
            p.n_params,
            round(p.epochs, 2),
            p.compute,
            p.seen,
            p.seen_se,
            p.seen_low,
            p.seen_high,
            p.unseen,
            p.fraction,
        ]
        for p in points
    ]
