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
    auroc_standard_error,
    average_precision,
    evaluate_detector,
    generate,
    held_out_scores,
    is_hallucination,
    likelihood_scores,
    query_ids,
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


def test_auroc_standard_error_matches_monte_carlo():
    # scores N(0,1) for negatives and N(1,1) for positives: A = Phi(1/sqrt 2) ~ 0.760
    rng = np.random.default_rng(0)
    n_pos, n_neg, reps = 30, 60, 2000
    a = [
        auroc(
            np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)],
            np.r_[rng.normal(1, 1, n_pos), rng.normal(0, 1, n_neg)],
        )
        for _ in range(reps)
    ]
    sd = float(np.std(a))
    # the Monte Carlo sd has relative error ~ 1/sqrt(2 reps) = 1.6%; Hanley-McNeil is an
    # approximation (exponential score model) good to a few per cent here
    assert auroc_standard_error(float(np.mean(a)), n_pos, n_neg) == pytest.approx(sd, rel=0.08)
    with pytest.raises(ValueError, match="both classes"):
        auroc_standard_error(0.5, 0, 3)


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
    y = is_hallucination(split.full, te.queries, te.objects, te.finished)
    # chance level and its standard error (Hanley & McNeil 1982) for these class sizes
    se0 = auroc_standard_error(0.5, int(y.sum()), int((~y).sum()))
    # the LM's own likelihood separates its hallucinations far beyond chance
    for name, score in likelihood_scores(cfg, params, te).items():
        assert auroc(y, score) > 0.5 + 3 * se0, name
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
        if dc.task == "sentence":
            # trained sentence detectors beat chance by two standard errors (one-sided
            # p < 0.025); token labels within one generation are dependent, so the
            # sentence-level error does not apply to them and only the range is checked
            assert sc.auroc > 0.5 + 2 * se0 and sc.auc_pr > sc.prevalence, dc
        else:
            assert 0.0 <= sc.auroc <= 1.0 and sc.prevalence * 0.5 <= sc.auc_pr <= 1.0
            # the bootstrap's clusters: every labelled token carries its query's id
            y_t, s_t, groups = held_out_scores(det, split.full, te, with_groups=True)
            per_row = (token_labels(split.full, te) >= 0).sum(1)
            qid = query_ids(te)
            assert np.bincount(groups).tolist() == np.bincount(qid, weights=per_row).tolist()
            np.testing.assert_array_equal(groups, np.repeat(qid, per_row))
            assert auroc(y_t, s_t) == sc.auroc
    with pytest.raises(ValueError, match="task"):
        DetectorConfig(task="word")
