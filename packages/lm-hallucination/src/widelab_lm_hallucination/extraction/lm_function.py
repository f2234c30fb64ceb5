"""A knowledge-graph-trained language model as a labelling function.

For a document about a subject (``metadata["subject"]``) and a variable tied to a graph
relation (``Variable.relation``), the model completes ``<S> subject <P> relation <O>``
greedily. The generated object becomes a candidate, with its span where the document
states it. Its confidence is either the model's own probability of the generated
object (``exp`` of the summed token log-likelihoods, ``<EOS>`` included), or one minus
a trained hallucination detector's probability that the output is hallucinated.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..corpus import Tokenizer
from ..hallucination import generate
from ..model import LMConfig, logits_fn
from .documents import Document
from .functions import Candidate, make_candidate, register_labelling_function
from .schema import Schema, Variable
from .text import find_phrase


@functools.partial(jax.jit, static_argnums=0)
def _token_logprobs(cfg: LMConfig, params, tokens: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits_fn(cfg, params, tokens[:, :-1]), axis=-1)
    return jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]


def object_likelihood(cfg: LMConfig, params, tokens: np.ndarray, prompt_len: np.ndarray):
    """Probability the model gives each row's generated object (``<EOS>`` included).

    Args:
        cfg: model shape.
        params: model parameters.
        tokens: ``(rows, width)`` prompt plus generation, ``<PAD>`` (0) after the end.
        prompt_len: prompt length of each row.

    Returns:
        ``(rows,)`` probabilities.
    """
    lp = np.asarray(_token_logprobs(cfg, params, jnp.asarray(tokens)))
    width = tokens.shape[1]
    pos = np.arange(1, width)[None, :]
    gen = (pos >= prompt_len[:, None]) & (tokens[:, 1:] != 0)
    return np.exp((lp * gen).sum(axis=1))


@register_labelling_function("kg-lm")
def kg_lm_function(
    *,
    cfg: LMConfig,
    params,
    tok: Tokenizer,
    detector=None,
    subject_field: str = "subject",
    batch_size: int = 256,
):
    """The KG-trained language model as a labelling function (module docstring).

    Args:
        cfg, params, tok: the model (e.g. from :func:`~widelab_lm_hallucination.load_run`).
        detector: a sentence-level :class:`~widelab_lm_hallucination.Detector`; when
            given, confidence is ``1 - sigmoid(score)`` instead of the likelihood.
        subject_field: the document metadata field naming the subject.
        batch_size: queries decoded per compiled batch.

    Returns:
        A labelling function with a ``prepare(documents, schema)`` method that decodes
        a whole batch of documents at once (the pipeline calls it per chunk).
    """
    if detector is not None and detector.config.task != "sentence":
        raise ValueError("kg-lm confidences need a sentence-level detector")
    answers: dict[tuple[str, str], tuple[str, float] | None] = {}
    relations = set(tok.relations)

    def _queries(docs: Sequence[Document], schema: Schema) -> list[tuple[str, str]]:
        qs = []
        for d in docs:
            subj = d.metadata.get(subject_field)
            if not isinstance(subj, str) or not subj:
                continue
            for v in schema.variables:
                if v.relation in relations and (subj, v.relation) not in answers:
                    if all(ch in tok.chars for ch in subj):
                        qs.append((subj, v.relation))
        return list(dict.fromkeys(qs))

    def prepare(docs: Sequence[Document], schema: Schema) -> None:
        qs = _queries(docs, schema)
        if not qs:
            return
        gen = generate(cfg, params, tok, qs, greedy=True, batch_size=batch_size)
        if detector is None:
            conf = object_likelihood(cfg, params, gen.tokens, gen.prompt_len)
        else:
            conf = 1.0 / (1.0 + np.exp(detector.scores(gen.tokens)))
        for q, obj, fin, c in zip(gen.queries, gen.objects, gen.finished, conf):
            answers[q] = (obj, float(np.clip(c, 0.0, 1.0))) if fin and obj else None

    def fn(doc: Document, var: Variable) -> Iterator[Candidate]:
        subj = doc.metadata.get(subject_field)
        if not isinstance(subj, str) or var.relation is None or var.relation not in relations:
            return
        key = (subj, var.relation)
        if key not in answers:
            prepare([doc], _single(var))
        ans = answers.get(key)
        if ans is None:
            return
        value = var.normalise(ans[0])
        if value is None:
            return
        spans = list(find_phrase(doc.text, value))
        s, e = spans[0] if spans else (-1, -1)
        yield make_candidate(doc, var, value, s, e, ans[1], "kg-lm")

    fn.prepare = prepare
    fn.function_name = "kg-lm"
    return fn


def _single(var: Variable) -> Schema:
    return Schema((var,))
