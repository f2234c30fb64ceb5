"""ReST-EM self-training with the knowledge graph as a binary verifier.

Singh et al. 2023, "Beyond Human Data: Scaling Self-Training for Problem-Solving with
Language Models" (ReST-EM, Alg. 1): each iteration is an E-step, sampling
``samples_per_query`` answers per training query from the current model and keeping
those the binary reward accepts (at most ``cap_per_query`` distinct ones per query),
and an M-step, fine-tuning the *base* model (not the previous iterate) on the kept
samples. Here the reward is the KG verifier: 1 when the generated object is a valid
object of the query.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from .corpus import FactStream, Tokenizer, encode_kg
from .hallucination import decode_budget, generate, is_hallucination, pass_at_k
from .kg import KGSplit, KnowledgeGraph, Query
from .model import LMConfig
from .train import TrainConfig, train


@dataclasses.dataclass(frozen=True)
class RestConfig:
    """ReST-EM settings.

    Attributes:
        iterations: E/M iterations.
        samples_per_query: samples drawn per training query in the E-step.
        cap_per_query: most distinct verified samples kept per query.
        temperature: sampling temperature.
        top_k: E-step sampling among the ``top_k`` most likely tokens (0: all).
        top_p: E-step nucleus sampling mass (1: all).
        finetune: fine-tuning settings of the M-step (from the base model); the
            default trains on the answer tokens only (``loss_on="answer"``).
        eval_samples: samples per query for pass@k.
        pass_k: the ``k`` values reported.
        max_new: most generated tokens per query (None: :func:`decode_budget` of the
            full graph).
    """

    iterations: int = 3
    samples_per_query: int = 8
    cap_per_query: int = 2
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    finetune: TrainConfig = TrainConfig(steps=100, lr=1e-3, warmup=10, loss_on="answer")
    eval_samples: int = 8
    pass_k: tuple[int, ...] = (1, 4)
    max_new: int | None = None

    def __post_init__(self):
        if self.iterations < 1 or self.samples_per_query < 1 or self.cap_per_query < 1:
            raise ValueError(
                "RestConfig: iterations, samples_per_query, cap_per_query must be >= 1"
            )
        if any(not 1 <= k <= self.eval_samples for k in self.pass_k):
            raise ValueError(f"RestConfig: pass_k {self.pass_k} must lie in 1..eval_samples")


def evaluate_queries(
    cfg: LMConfig,
    params,
    tok: Tokenizer,
    kg: KnowledgeGraph,
    queries: Sequence[Query],
    *,
    n_samples: int,
    ks: Sequence[int],
    key: jax.Array,
    temperature: float = 1.0,
    max_new: int | None = None,
) -> dict[str, float]:
    """Greedy accuracy and mean unbiased pass@k (Chen et al. 2021, Eq. 1) over queries.

    ``max_new`` bounds the generated tokens per query; default :func:`decode_budget`
    of ``kg``, so every valid object can be produced in full.
    """
    if max_new is None:
        max_new = decode_budget(tok, kg)
    greedy = generate(cfg, params, tok, queries, max_new=max_new)
    acc = 1.0 - is_hallucination(kg, greedy.queries, greedy.objects, greedy.finished).mean()
    gen = generate(
        cfg,
        params,
        tok,
        queries,
        greedy=False,
        n_samples=n_samples,
        temperature=temperature,
        key=key,
        max_new=max_new,
    )
    ok = ~is_hallucination(kg, gen.queries, gen.objects, gen.finished)
    c = ok.reshape(len(queries), n_samples).sum(1)
    out = {"accuracy": float(acc)}
    for k in ks:
        out[f"pass@{k}"] = float(np.mean([pass_at_k(n_samples, int(ci), k) for ci in c]))
    return out


def rest_em(
    cfg: LMConfig,
    base_params,
    tok: Tokenizer,
    split: KGSplit,
    rc: RestConfig,
    *,
    key: jax.Array,
    progress: Callable | None = None,
) -> tuple[list[dict], object]:
    """Run ReST-EM from ``base_params``; return per-iteration metrics and final params.

    Iteration 0 is the base model. Each record holds ``kept`` (verified samples kept),
    ``reward`` (share of E-step samples verified) and ``accuracy`` / ``pass@k`` on the
    seen and unseen queries.
    """
    seen, unseen = list(split.seen), list(split.unseen)
    max_new = rc.max_new if rc.max_new is not None else decode_budget(tok, split.full)

    def evaluate(params, k):
        k1, k2 = jax.random.split(k)
        rec = {}
        for name, qs, kk in (("seen", seen, k1), ("unseen", unseen, k2)):
            if qs:
                m = evaluate_queries(
                    cfg,
                    params,
                    tok,
                    split.full,
                    qs,
                    n_samples=rc.eval_samples,
                    ks=rc.pass_k,
                    key=kk,
                    temperature=rc.temperature,
                    max_new=max_new,
                )
                rec.update({f"{name}_{a}": v for a, v in m.items()})
        return rec

    key, k0 = jax.random.split(key)
    history = [{"iteration": 0, "kept": 0, "reward": float("nan"), **evaluate(base_params, k0)}]
    params = base_params
    its = range(1, rc.iterations + 1)
    for it in progress(its, desc="ReST-EM") if progress else its:
        key, k_s, k_e, k_f = jax.random.split(key, 4)
        gen = generate(
            cfg,
            params,
            tok,
            seen,
            greedy=False,
            n_samples=rc.samples_per_query,
            temperature=rc.temperature,
            key=k_s,
            max_new=max_new,
            top_k=rc.top_k,
            top_p=rc.top_p,
        )
        ok = ~is_hallucination(split.full, gen.queries, gen.objects, gen.finished)
        kept: dict[Query, list[str]] = {}
        for q, o, good in zip(gen.queries, gen.objects, ok):
            lst = kept.setdefault(q, [])
            if good and o not in lst and len(lst) < rc.cap_per_query:
                lst.append(o)
        triples = [(s, r, o) for (s, r), objs in kept.items() for o in objs]
        rec = {"iteration": it, "kept": len(triples), "reward": float(ok.mean())}
        if triples:
            data = KnowledgeGraph.from_triples(triples)
            seed = int(jax.random.randint(k_f, (), 0, 2**31 - 1))  # data order and step keys
            ft = dataclasses.replace(rc.finetune, seed=seed)
            stream = FactStream(encode_kg(tok, data), cfg.seq_len, ft.batch_size, seed)
            params = train(cfg, ft, stream, init_params=base_params).state.params
        rec.update(evaluate(params, k_e))
        history.append(rec)
    return history, params
