"""The KG-trained language model as a labelling function."""

import dataclasses

import numpy as np
import pytest
from widelab_lm_hallucination import (
    FactStream,
    KnowledgeGraph,
    LMConfig,
    Tokenizer,
    TrainConfig,
    encode_kg,
    logits_fn,
    train,
)
from widelab_lm_hallucination.extraction import (
    Document,
    Schema,
    Store,
    Variable,
    labelling_function,
    run_extraction,
)
from widelab_lm_hallucination.hallucination import generate

TRIPLES = [("Ann Bo", "born in", "Lyon"), ("Cy Dee", "born in", "Paris")]


@pytest.fixture(scope="module")
def model():
    """A tiny LM that has memorised the two facts."""
    tok = Tokenizer.fit(TRIPLES)
    cfg = LMConfig(tok.vocab_size, d_model=32, n_layers=1, n_heads=2, seq_len=32)
    kg = KnowledgeGraph.from_triples(TRIPLES)
    tc = TrainConfig(steps=150, batch_size=4, lr=1e-2, warmup=10)
    res = train(cfg, tc, FactStream(encode_kg(tok, kg), cfg.seq_len, tc.batch_size))
    return cfg, res.state.params, tok


def _step_by_step_probability(cfg, params, tok, subject, relation, obj):
    """exp(sum log p) of ``obj <EOS>`` after the prompt, one forward pass per token."""
    ids = tok.encode_fact(subject, relation, obj)
    n_prompt = len(tok.encode_fact(subject, relation))
    logp = 0.0
    for t in range(n_prompt, len(ids)):
        x = np.zeros((1, cfg.seq_len), np.int32)
        x[0, :t] = ids[:t]
        z = np.asarray(logits_fn(cfg, params, x))[0, t - 1].astype(np.float64)
        z = z - z.max()
        logp += z[ids[t]] - np.log(np.exp(z).sum())
    return float(np.exp(logp))


def test_kg_lm_candidate_and_likelihood(model):
    cfg, params, tok = model
    gen = generate(cfg, params, tok, [("Ann Bo", "born in")], max_new=12)
    var = Variable("bio", "text", relation="born in")
    fn = labelling_function("kg-lm", cfg=cfg, params=params, tok=tok)
    obj = gen.objects[0]
    assert gen.finished[0] and obj == "Lyon"  # memorised
    text = f"Ann Bo was born in {obj}. Nothing else."
    (c,) = fn(Document("d", text, {"subject": "Ann Bo"}), var)
    assert c.value == obj.strip() and c.function == "kg-lm"
    assert text[c.start : c.end] == c.value
    expected = _step_by_step_probability(cfg, params, tok, "Ann Bo", "born in", obj)
    assert c.confidence == pytest.approx(expected, rel=1e-3)
    # not stated in the document: a candidate without a span
    (c2,) = fn(Document("e", "No mention here.", {"subject": "Ann Bo"}), var)
    assert (c2.start, c2.end, c2.sentence) == (-1, -1, "")


def test_kg_lm_category_values_and_missing_subjects(model):
    cfg, params, tok = model
    fn = labelling_function("kg-lm", cfg=cfg, params=params, tok=tok)
    var = Variable("city", "category", categories=("lyon", "Paris"), relation="born in")
    (c,) = fn(Document("d", "Ann Bo, born in Lyon.", {"subject": "Ann Bo"}), var)
    assert (c.value, c.start, c.end) == ("lyon", 16, 20)  # the schema's spelling, the text's span
    assert c.confidence > 0.5
    # a generated name outside the allowed categories gives no candidate
    only_paris = Variable("city", "category", categories=("Paris",), relation="born in")
    assert list(fn(Document("d", "x", {"subject": "Ann Bo"}), only_paris)) == []
    assert list(fn(Document("d", "x", {}), var)) == []  # no subject field
    assert list(fn(Document("d", "x", {"subject": "Ann Bo"}), Variable("v", "text"))) == []


def test_kg_lm_detector_confidence_and_batches(model):
    cfg, params, tok = model

    @dataclasses.dataclass
    class FakeDetector:
        config: object = dataclasses.field(
            default_factory=lambda: type("C", (), {"task": "sentence"})()
        )

        def scores(self, tokens):
            return np.full(len(tokens), 2.0)

    fn = labelling_function("kg-lm", cfg=cfg, params=params, tok=tok, detector=FakeDetector())
    var = Variable("bio", "text", relation="born in")
    docs = [Document(f"d{i}", "text", {"subject": s}) for i, (s, _, _) in enumerate(TRIPLES)]
    with Store(":memory:", Schema((var,))) as store:
        run_extraction(store, docs, {"kg-lm": fn}, progress=False)
        confs = [sc.candidate.confidence for sc in store.candidates()]
    assert confs and np.allclose(confs, 1 / (1 + np.exp(2.0)))
    with pytest.raises(ValueError, match="sentence-level detector"):
        bad = FakeDetector()
        bad.config = type("C", (), {"task": "token"})()
        labelling_function("kg-lm", cfg=cfg, params=params, tok=tok, detector=bad)
