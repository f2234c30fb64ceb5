"""Hallucination detectors, their metrics, and the validation-budget trade-off.

Hron et al. (2024, Sec. 4) detect hallucinations in two task formulations:

* **sentence**: given ``<S> subject <P> relation <O> generated object <EOS>``, is the
  object a hallucination? The detector reads the sentence's final hidden state.
* **token**: given the LM's hidden state at one generated token, is the generation a
  hallucination at that token? Here a token is labelled positive when the generated
  prefix up to and including it is no prefix of any valid object (followed by
  ``<EOS>``), so the label marks where the generation left every valid answer.

Each detector is an MLP head (width = detector size) on a transformer body: the LM's
frozen body (``"frozen"``), the LM's body fine-tuned jointly with the head
(``"finetune"``), or a fresh body of any size (``"scratch"``). Scores are compared with
AUC-PR (average precision; its chance level is the prevalence) and AUROC.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from widelab_core import layers as L

from .hallucination import Generations, is_hallucination
from .kg import KnowledgeGraph
from .model import LMConfig, init_lm, transformer

MODES = ("frozen", "finetune", "scratch")
TASKS = ("sentence", "token")


# ---------------------------------------------------------------------------
# Metrics


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney statistic with mid-ranks for ties
    (Hanley & McNeil 1982, Eq. 2): ``(R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``.

    Raises:
        ValueError: labels of a single class, or mismatched lengths.
    """
    y, s = _check_scores(labels, scores)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC-PR as average precision ``sum_n (R_n - R_{n-1}) P_n`` over distinct score
    thresholds, highest first (the step-wise estimator of Manning et al. 2008, Sec. 8.4).

    Raises:
        ValueError: labels of a single class, or mismatched lengths.
    """
    y, s = _check_scores(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    tp = np.cumsum(y)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    precision = tp[last] / (last + 1)
    recall = tp[last] / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _check_scores(labels, scores):
    y = np.asarray(labels, bool).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if y.all() or not y.any():
        raise ValueError("detector metrics need both positive and negative labels")
    return y, s


# ---------------------------------------------------------------------------
# Labels


def token_labels(kg: KnowledgeGraph, gen: Generations) -> np.ndarray:
    """Per-position labels ``(rows, width)`` of the generated tokens.

    A generated character is labelled 1 when the name generated so far (up to and
    including it) is no prefix of any valid object; the ``<EOS>`` token is labelled 1
    when the finished name is not a valid object. Positions outside the generation
    are -1.
    """
    out = -np.ones(gen.tokens.shape, np.int32)
    for i, q in enumerate(gen.queries):
        valid = kg.valid_objects(*q)
        name, start = gen.objects[i], int(gen.prompt_len[i])
        for k in range(len(name)):
            prefix = name[: k + 1]
            out[i, start + k] = int(not any(v.startswith(prefix) for v in valid))
        if gen.finished[i]:
            out[i, start + len(name)] = int(name not in valid)
    return out


# ---------------------------------------------------------------------------
# Detector


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Detector settings.

    Attributes:
        task: ``"sentence"`` or ``"token"``.
        mode: ``"frozen"``, ``"finetune"`` or ``"scratch"``.
        width: hidden width of the MLP head (the detector size for frozen heads).
        body: body shape for ``"scratch"`` (None: the LM's shape).
        steps: full-batch AdamW steps.
        lr: learning rate.
    """

    task: str = "sentence"
    mode: str = "frozen"
    width: int = 64
    body: LMConfig | None = None
    steps: int = 300
    lr: float = 3e-3

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"DetectorConfig.task must be one of {TASKS}, got {self.task!r}")
        if self.mode not in MODES:
            raise ValueError(f"DetectorConfig.mode must be one of {MODES}, got {self.mode!r}")


def _head(width: int) -> L.Layer:
    return L.serial(
        L.Dense(width, parameterization="standard"),
        L.Relu(),
        L.Dense(1, parameterization="standard"),
    )


def _pool(task: str, h: jax.Array, tokens: jax.Array) -> jax.Array:
    """Sentence task: the hidden state of the last non-pad token; token task: all."""
    if task == "sentence":
        last = jnp.sum((tokens != 0).astype(jnp.int32), axis=1) - 1
        return h[jnp.arange(h.shape[0]), last]
    return h


def _bce(z, labels, weight):
    pos = jnp.sum(weight * labels) / jnp.maximum(jnp.sum(weight), 1.0)
    pw = (1.0 - pos) / jnp.clip(pos, 1e-3, 1.0)  # balance the classes
    ll = labels * pw * jax.nn.log_sigmoid(z) + (1 - labels) * jax.nn.log_sigmoid(-z)
    return -jnp.sum(ll * weight) / jnp.maximum(jnp.sum(weight), 1.0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _fit(body_cfg, dcfg, train_body, steps, body_p, head_p, tokens, labels, weight):
    body = transformer(body_cfg).layers[0]
    head = _head(dcfg.width)
    opt = optax.adamw(dcfg.lr, weight_decay=1e-4)
    if train_body:
        p0 = (body_p, head_p)

        def loss(p):
            h = _pool(dcfg.task, body.apply(p[0], tokens), tokens)
            return _bce(head.apply(p[1], h)[..., 0], labels, weight)
    else:  # frozen LM: features once, then only the head learns
        p0 = head_p
        feats = _pool(dcfg.task, body.apply(body_p, tokens), tokens)

        def loss(p):
            return _bce(head.apply(p, feats)[..., 0], labels, weight)

    def step(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), None, length=steps)
    return p if train_body else (body_p, p)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _score(body_cfg, dcfg, body_p, head_p, tokens):
    h = _pool(dcfg.task, transformer(body_cfg).layers[0].apply(body_p, tokens), tokens)
    return _head(dcfg.width).apply(head_p, h)[..., 0]


@dataclasses.dataclass
class Detector:
    """A trained detector; :meth:`scores` gives hallucination logits."""

    config: DetectorConfig
    body_cfg: LMConfig
    body_params: object
    head_params: object

    def scores(self, tokens: np.ndarray) -> np.ndarray:
        """Sentence task: one score per row. Token task: ``(rows, width)`` scores."""
        return np.asarray(
            _score(
                self.body_cfg, self.config, self.body_params, self.head_params, jnp.asarray(tokens)
            )
        )


def train_detector(
    dcfg: DetectorConfig,
    lm_cfg: LMConfig,
    lm_params,
    kg: KnowledgeGraph,
    gen: Generations,
    *,
    key: jax.Array,
) -> Detector:
    """Fit a detector on an LM's generations labelled by the graph.

    Args:
        dcfg: detector settings.
        lm_cfg: the LM's shape (the body for ``frozen`` / ``finetune``).
        lm_params: the LM's parameters.
        kg: ground-truth graph.
        gen: generations to learn from (tokens padded to the LM's context or shorter).
        key: PRNG key for the head (and the scratch body).

    Returns:
        The :class:`Detector`.
    """
    k_head, k_body = jax.random.split(key)
    if dcfg.mode == "scratch":
        body_cfg = dcfg.body or lm_cfg
        body_cfg = dataclasses.replace(body_cfg, vocab_size=lm_cfg.vocab_size)
        body_p = init_lm(body_cfg, k_body)[0]
    else:
        body_cfg, body_p = lm_cfg, lm_params[0]
    _, head_p = _head(dcfg.width).init(k_head, (1, body_cfg.d_model))
    tokens = jnp.asarray(gen.tokens)
    if dcfg.task == "sentence":
        labels = is_hallucination(kg, gen.queries, gen.objects, gen.finished).astype(np.float32)
        weight = np.ones_like(labels)
    else:
        lab = token_labels(kg, gen)
        labels = np.maximum(lab, 0).astype(np.float32)
        weight = (lab >= 0).astype(np.float32)
    bp, hp = _fit(
        body_cfg,
        dcfg,
        dcfg.mode != "frozen",
        dcfg.steps,
        body_p,
        head_p,
        tokens,
        jnp.asarray(labels),
        jnp.asarray(weight),
    )
    return Detector(dcfg, body_cfg, bp, hp)


@dataclasses.dataclass(frozen=True)
class DetectorScore:
    """Held-out detector quality.

    Attributes:
        auc_pr: average precision; prevalence: its chance level (share of positives);
        auroc: area under the ROC curve; n: number of scored items.
    """

    auc_pr: float
    prevalence: float
    auroc: float
    n: int


def held_out_scores(
    det: Detector, kg: KnowledgeGraph, gen: Generations, *, with_groups: bool = False
) -> tuple[np.ndarray, ...]:
    """Labels and scores of a detector on generations, flattened to the scored items.

    Sentence task: one (label, score) per generation. Token task: one per generated
    position that has a label (``token_labels >= 0``).

    Args:
        det: a trained detector.
        kg: ground truth.
        gen: the generations to score.
        with_groups: also return the query of each item (an integer id, equal for all
            samples and tokens of one query), the clusters of
            :func:`~widelab_lm_hallucination.auroc_bootstrap_interval`.

    Returns:
        ``(labels, scores)`` or ``(labels, scores, groups)``: boolean labels (True:
        hallucination), float scores and integer query ids.
    """
    s = det.scores(gen.tokens)
    groups = query_ids(gen)
    if det.config.task == "sentence":
        y = is_hallucination(kg, gen.queries, gen.objects, gen.finished)
    else:
        lab = token_labels(kg, gen)
        keep = lab >= 0
        y, s = lab[keep].astype(bool), s[keep]
        groups = np.broadcast_to(groups[:, None], lab.shape)[keep]
    if with_groups:
        return np.asarray(y, bool), np.asarray(s), np.asarray(groups)
    return np.asarray(y, bool), np.asarray(s)


def query_ids(gen: Generations) -> np.ndarray:
    """An integer id per generation row, the same for every row of one query (in order of
    first appearance).

    Example:
        >>> g = Generations((("a", "r"), ("b", "r"), ("a", "r")), ("x", "y", "z"),
        ...                 np.ones(3, bool), np.zeros((3, 4), np.int32), np.ones(3, np.int32))
        >>> query_ids(g).tolist()
        [0, 1, 0]
    """
    first: dict = {}
    return np.array([first.setdefault(q, len(first)) for q in gen.queries], np.int64)


def score_detector(labels: np.ndarray, scores: np.ndarray) -> DetectorScore:
    """AUC-PR, prevalence and AUROC of given labels and scores.

    Raises:
        ValueError: the labels are all of one class, or mismatched lengths.
    """
    y = np.asarray(labels, bool)
    return DetectorScore(
        average_precision(y, scores), float(y.mean()), auroc(y, scores), int(y.size)
    )


def evaluate_detector(det: Detector, kg: KnowledgeGraph, gen: Generations) -> DetectorScore:
    """AUC-PR, prevalence and AUROC of a detector on held-out generations.

    Raises:
        ValueError: the held-out labels are all of one class.
    """
    return score_detector(*held_out_scores(det, kg, gen))


def split_generations(gen: Generations, frac: float = 0.5, *, seed: int = 0):
    """Split generations by query (all samples of a query on one side)."""
    qs = list(dict.fromkeys(gen.queries))
    rng = np.random.default_rng(seed)
    first = {qs[i] for i in rng.permutation(len(qs))[: max(1, int(frac * len(qs)))]}
    a = np.array([q in first for q in gen.queries])

    def take(m):
        idx = np.nonzero(m)[0]
        return Generations(
            tuple(gen.queries[i] for i in idx),
            tuple(gen.objects[i] for i in idx),
            gen.finished[idx],
            gen.tokens[idx],
            gen.prompt_len[idx],
        )

    return take(a), take(~a)


# ---------------------------------------------------------------------------
# Validation budget


def validation_budget(
    labels: np.ndarray, scores: np.ndarray, shares: Sequence[float]
) -> np.ndarray:
    """Precision of accepted facts when a validator checks the least confident outputs.

    The outputs are ranked by detector score (most likely hallucinated first); the
    validator (here the KG oracle) checks the first ``share`` of them and rejects the
    hallucinations among those; every unchecked output is accepted. This is the
    human-in-the-loop extraction trade-off of Butcher et al. (2023).

    Args:
        labels: True for hallucinated outputs.
        scores: detector scores (higher: more likely hallucinated).
        shares: shares of outputs checked, each in ``[0, 1]``.

    Returns:
        Precision of the accepted set for each share.
    """
    y = np.asarray(labels, bool)
    order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
    y = y[order]
    out = []
    for q in shares:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"validation shares must be in [0, 1], got {q}")
        k = int(round(q * len(y)))
        correct = (~y).sum()  # every correct output is accepted
        accepted = correct + y[k:].sum()  # hallucinations slip through unless checked
        out.append(correct / accepted if accepted else 1.0)
    return np.asarray(out)


def detectability(
    lms: Sequence[tuple[LMConfig, object]],
    kg: KnowledgeGraph,
    tok,
    queries: Sequence,
    detectors: Sequence[DetectorConfig],
    *,
    key: jax.Array,
    n_samples: int = 4,
    temperature: float = 1.0,
    level: float = 0.95,
    n_boot: int = 1000,
) -> list[dict]:
    """Detector quality against LM size and detector size (Hron et al. 2024, Sec. 4).

    For each LM, sample ``n_samples`` objects per query, split the outputs by query into
    halves, train every detector config on one half and score it on the other.

    Each LM also gets the training-free baselines of
    :func:`~widelab_lm_hallucination.likelihood_scores` on the same held-out half
    (``mode`` ``"object NLL"`` and ``"token entropy"``, width 0).

    Args:
        lms: ``(config, params)`` of each LM.
        kg: ground-truth graph.
        tok: tokenizer.
        queries: queries to sample objects for.
        detectors: detector settings trained on every LM.
        key: PRNG key (sampling and detector initialisation).
        n_samples: sampled objects per query.
        temperature: sampling temperature.
        level: coverage of the AUROC's bootstrap interval.
        n_boot: bootstrap replicates of that interval.

    Returns:
        One record per (LM, detector): ``d_model``, ``task``, ``mode``, ``width``,
        ``auc_pr``, ``prevalence``, ``auroc``, ``n``, ``auroc_se``, the Hanley-McNeil
        standard error of the AUROC (:func:`~widelab_lm_hallucination.auroc_standard_error`,
        with ``prevalence * n`` positives, which treats items as independent), and
        ``auroc_low`` / ``auroc_high``, the percentile bootstrap interval at ``level`` of
        the same held-out scores resampled by query: all samples (sentence task) or
        all tokens (token task) of one query together, since they are not independent
        (:func:`~widelab_lm_hallucination.auroc_bootstrap_interval` with ``groups``,
        seed 0);
        NaN metrics when a half holds a single class.

    Example:
        >>> # rows = detectability([(cfg, params)], kg, tok, queries, [DetectorConfig()],
        >>> #                      key=jax.random.key(0))
    """
    from .baselines import auroc_bootstrap_interval, likelihood_scores
    from .hallucination import decode_budget, generate

    nan = float("nan")

    def interval(y, s, groups):
        if 0 < y.sum() < len(y):
            low, high, _ = auroc_bootstrap_interval(y, s, groups=groups, level=level, n_boot=n_boot)
            return {"auroc_low": low, "auroc_high": high}
        return {"auroc_low": nan, "auroc_high": nan}

    out = []
    for cfg, params in lms:
        key, k_gen, k_det = jax.random.split(key, 3)
        gen = generate(
            cfg,
            params,
            tok,
            list(queries),
            greedy=False,
            n_samples=n_samples,
            temperature=temperature,
            key=k_gen,
            max_new=decode_budget(tok, kg),
        )
        tr, te = split_generations(gen, seed=0)
        for dc in detectors:
            rec = {"d_model": cfg.d_model, "task": dc.task, "mode": dc.mode, "width": dc.width}
            try:
                det = train_detector(dc, cfg, params, kg, tr, key=k_det)
                y, s, groups = held_out_scores(det, kg, te, with_groups=True)
                rec.update(dataclasses.asdict(score_detector(y, s)))
                rec.update(interval(y, s, groups))
            except ValueError:
                rec.update(auc_pr=nan, prevalence=nan, auroc=nan, n=0)
                rec.update(auroc_low=nan, auroc_high=nan)
            out.append(rec)
        y = is_hallucination(kg, te.queries, te.objects, te.finished)
        for name, score in likelihood_scores(cfg, params, te).items():
            rec = {"d_model": cfg.d_model, "task": "sentence", "width": 0}
            rec["mode"] = name.replace("_", " ").replace("nll", "NLL")
            if 0 < y.sum() < len(y):
                rec.update(auc_pr=average_precision(y, score), auroc=auroc(y, score))
            else:
                rec.update(auc_pr=nan, auroc=nan)
            rec.update(prevalence=float(y.mean()), n=len(y))
            rec.update(interval(y, score, query_ids(te)))
            out.append(rec)
    for rec in out:
        rec["auroc_se"] = _auroc_se(rec)
    return out


def _auroc_se(rec: dict) -> float:
    """Hanley-McNeil standard error of a record's AUROC (NaN when undefined)."""
    from .baselines import auroc_standard_error

    auc, n, prev = rec.get("auroc"), rec.get("n", 0), rec.get("prevalence")
    if auc is None or prev is None or not (math.isfinite(auc) and math.isfinite(prev)):
        return float("nan")
    n_pos = int(round(prev * n))
    if n_pos < 1 or n_pos >= n:
        return float("nan")
    return auroc_standard_error(float(auc), n_pos, n - n_pos)
