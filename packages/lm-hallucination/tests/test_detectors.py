"""Detector metrics against scikit-learn, token labels, validation budget, training."""

import dataclasses

import jax
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from widelab_lm_hallucination import (
    DetectorConfig,
    Generations,
    KnowledgeGraph,
    Tokenizer,
    auroc,
    average_precision,
    evaluate_detector,
    generate,
    split_generations,
    token_labels,
    train_detector,
    validation_budget,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.2
    s = np.round(rng.normal(size=300) + y, 1)  # rounding creates ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert auroc(y, y.astype(float)) == 1.0 and average_precision(y, y.astype(float)) == 1.0
    with pytest.raises(ValueError, match="both positive and negative"):
        auroc(np.ones(3, bool), np.zeros(3))


def test_validation_budget_closed_forms():
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0], bool)  # 3 hallucinations of 10
    perfect = y.astype(float)
    shares = [0.0, 0.1, 0.3, 1.0]
    np.testing.assert_allclose(validation_budget(y, perfect, shares), [0.7, 7 / 9, 1.0, 1.0])
    worst = -perfect
    np.testing.assert_allclose(validation_budget(y, worst, shares), [0.7, 0.7, 0.7, 1.0])
    with pytest.raises(ValueError, match="shares"):
        validation_budget(y, perfect, [1.5])


def test_token_labels_mark_where_generation_leaves_valid_answers():
    kg = KnowledgeGraph.from_triples([("Al", "r", "Ann"), ("Al", "r", "Bob"), ("Cy", "r", "Anna")])
    tok = Tokenizer.fit(kg.triples)
    rows, qs, objs, fin = [], [], [], []
    for q, o, f in [
        (("Al", "r"), "Ann", True),
        (("Al", "r"), "Anna", True),
        (("Cy", "r"), "Ann", True),
        (("Al", "r"), "Bo", False),
    ]:
        ids = tok.encode_fact(*q) + tok.encode_name(o) + ([4] if f else [])
        rows.append(ids + [0] * (16 - len(ids)))
        qs.append(q)
        objs.append(o)
        fin.append(f)
    gen = Generations(
        tuple(qs),
        tuple(objs),
        np.array(fin),
        np.array(rows, np.int32),
        np.array([len(tok.encode_fact(*q)) for q in qs]),
    )
    lab = token_labels(kg, gen)
    p = gen.prompt_len
    assert list(lab[0, p[0] : p[0] + 4]) == [0, 0, 0, 0]  # A n n <EOS>: valid
    assert list(lab[1, p[1] : p[1] + 5]) == [0, 0, 0, 1, 1]  # "Anna" leaves at the last a
    assert list(lab[2, p[2] : p[2] + 4]) == [0, 0, 0, 1]  # "Ann" is a prefix trap of "Anna"
    assert list(lab[3, p[3] : p[3] + 3]) == [0, 0, -1]  # unfinished: no <EOS> label
    assert np.all(lab[:, : p.min()] == -1)


def test_detectors_train_and_score(tiny_lm, key):
    cfg, params, tok, split, _ = tiny_lm
    # sample hot so that the memorising LM still makes mistakes to detect
    gen = generate(
        cfg, params, tok, list(split.seen), greedy=False, n_samples=6, temperature=2.0, key=key
    )
    tr, te = split_generations(gen, 0.5, seed=0)
    assert set(tr.queries).isdisjoint(te.queries)
    assert len(tr.objects) + len(te.objects) == len(gen.objects)
    base = DetectorConfig(task="sentence", mode="frozen", width=16, steps=60)
    for dc in (
        base,
        dataclasses.replace(base, task="token"),
        dataclasses.replace(base, mode="finetune", steps=20),
    ):
        det = train_detector(dc, cfg, params, split.full, tr, key=key)
        if dc.mode == "frozen":  # the LM itself is untouched
            for a, b in zip(jax.tree.leaves(det.body_params), jax.tree.leaves(params[0])):
                np.testing.assert_array_equal(a, b)
        sc = evaluate_detector(det, split.full, te)
        assert 0.0 < sc.prevalence < 1.0
        assert 0.0 <= sc.auroc <= 1.0 and sc.prevalence * 0.5 <= sc.auc_pr <= 1.0
    with pytest.raises(ValueError, match="task"):
        DetectorConfig(task="word")
