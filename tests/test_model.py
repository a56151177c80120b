"""CodeSuggester on synthetic vectors: contract, zero-shot, training, thresholds, storage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from coder.machine.embed import HashingEmbedder
from coder.machine.model import CodeSuggester, _best_threshold

TOPICS = {
    "finance": "money bank loans grants funding capital cost",
    "language": "english translation language speaking words foreign tongue",
    "markets": "customers abroad export demand market growth buyers",
}


def corpus(n_per_topic=20, seed=0):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    names = list(TOPICS)
    for i in range(n_per_topic * len(names)):
        words = TOPICS[names[i % 3]].split()
        chosen = rng.choice(words, size=4, replace=False)
        extra = rng.choice(["well", "so", "really", "we", "they", "think"], size=3)
        texts.append(" ".join([*chosen, *extra]))
        labels.append(i % 3)
    Y = np.zeros((len(texts), 3), dtype=np.int8)
    Y[np.arange(len(texts)), labels] = 1
    return texts, Y


@pytest.fixture
def emb():
    return HashingEmbedder(dim=128)


def fitted(emb, Y=None, texts=None, **params):
    texts_, Y_ = corpus()
    texts = texts if texts is not None else texts_
    Y = Y if Y is not None else Y_
    protos = emb.encode(list(TOPICS.values()))
    X = emb.encode(texts)
    model = CodeSuggester(**params).fit(
        X, Y, code_ids=list(TOPICS), code_vectors=protos, texts=texts,
        groups=np.arange(len(texts)) // 10)
    return model, X, texts


def test_init_stores_hyperparameters_only():
    model = CodeSuggester(min_positives=12, C=0.5)
    assert model.get_params()["min_positives"] == 12
    assert not [k for k in vars(model) if k.endswith("_")]
    assert clone(model).get_params() == model.get_params()


def test_zero_shot_ranks_the_matching_code_first(emb):
    model, X, texts = fitted(emb, Y=np.full((60, 3), -1, np.int8))
    assert (model.clf_index_ == -1).all() and (model.weights_ == 0).all()
    scores = model.predict_proba(X, texts=texts)
    _, Y = corpus()
    assert (scores.argmax(axis=1) == Y.argmax(axis=1)).mean() > 0.9
    assert ((scores >= 0) & (scores <= 1)).all()
    assert {model.source_of(c) for c in range(3)} == {"codebook"}


def test_training_learns_classifiers_thresholds_and_cv_metrics(emb):
    model, X, texts = fitted(emb)
    assert (model.clf_index_ >= 0).all()
    assert model.n_positives_.tolist() == [20, 20, 20]
    np.testing.assert_allclose(model.weights_, 20 / 28)
    assert {model.source_of(c) for c in range(3)} == {"blend"}
    for entry in model.metrics_:
        assert entry["evaluated"] == "cross-validated"
        assert entry["f1"] > 0.8 and entry["support"] == 20
    _, Y = corpus()
    assert (model.predict(X, texts=texts) == Y).mean() > 0.9


def test_min_positives_decides_which_codes_get_a_classifier(emb):
    _, Y = corpus()
    Y = Y.copy()
    Y[np.flatnonzero(Y[:, 2] == 1)[5:], 2] = -1  # only 5 positives for 'markets'
    model, _, _ = fitted(emb, Y=Y, min_positives=8)
    assert model.clf_index_.tolist()[:2] == [0, 1] and model.clf_index_[2] == -1
    assert model.source_of(2) == "codebook"
    assert model.metrics_[2]["evaluated"] == "in-sample (calibration only)"


def test_multi_label_segments(emb):
    texts, Y = corpus()
    both = [f"{a} {b}" for a, b in zip(texts[0::3], texts[1::3])]  # finance + language
    Yb = np.zeros((len(both), 3), np.int8)
    Yb[:, :2] = 1
    model, _, _ = fitted(emb, Y=np.vstack([Y, Yb]), texts=texts + both)
    scores = model.predict_proba(emb.encode(both), texts=both)
    assert (model.predict(emb.encode(both), texts=both)[:, :2].sum(axis=1) >= 1).all()
    assert (scores[:, :2].min(axis=1) > scores[:, 2]).mean() > 0.8


def test_mask_zeroes_codes_that_do_not_apply(emb):
    model, X, texts = fitted(emb)
    mask = np.ones((len(X), 3), bool)
    mask[:, 0] = False
    scores = model.predict_proba(X, texts=texts, mask=mask)
    assert (scores[:, 0] == 0).all()


def test_deterministic_refit(emb):
    a, X, texts = fitted(emb)
    b, _, _ = fitted(emb)
    np.testing.assert_array_equal(a.predict_proba(X, texts=texts), b.predict_proba(X, texts=texts))
    np.testing.assert_array_equal(a.thresholds_, b.thresholds_)


def test_arrays_round_trip_without_pickle(emb):
    model, X, texts = fitted(emb)
    arrays = model.to_arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    # through bytes, as the study stores them
    stored = {k: (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()) for k, a in arrays.items()}
    back = {k: np.frombuffer(b, dtype=np.dtype(d)).reshape(s) for k, (d, s, b) in stored.items()}
    again = CodeSuggester.from_arrays(back)
    assert again.get_params() == model.get_params()
    np.testing.assert_allclose(again.predict_proba(X, texts=texts),
                               model.predict_proba(X, texts=texts), rtol=1e-6)
    meta = json.loads(arrays["meta"].tobytes())
    assert meta["params"]["min_positives"] == 8


def test_best_threshold_maximises_f1():
    scores = np.array([0.9, 0.8, 0.7, 0.4, 0.2])
    y = np.array([1, 1, 0, 1, 0], bool)
    t, p, r, f = _best_threshold(scores, y)
    assert 0.2 < t < 0.4
    assert (p, r) == (0.75, 1.0)
    assert f == pytest.approx(2 * 0.75 / 1.75)


def test_joint_solver_matches_scikit_learn_logistic_regression():
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from coder.machine.model import _fit_logistic, _linear

    rng = np.random.default_rng(1)
    Xd = rng.normal(size=(200, 6))
    Xs = sp.random(200, 30, density=0.1, random_state=1, format="csr")
    full = np.hstack([Xs.toarray(), Xd])
    true_w = rng.normal(size=(36, 2))
    Y = (full @ true_w + rng.normal(size=(200, 2)) > 0).astype(np.int8)
    Y[:40, 1] = -1  # unknown for the second code: left out of its fit
    W, b = _fit_logistic(Xs, Xd, Y, C=0.7, tol=1e-12)
    for c, rows in ((0, slice(None)), (1, slice(40, None))):
        ref = LogisticRegression(C=0.7, tol=1e-10, max_iter=5000).fit(full[rows], Y[rows, c])
        np.testing.assert_allclose(W[:, c], ref.coef_[0], atol=1e-3)  # float32 products
        assert b[c] == pytest.approx(ref.intercept_[0], abs=1e-3)
        np.testing.assert_allclose(_linear(Xs, Xd, W, b)[:, c], ref.decision_function(full),
                                   atol=1e-3)


def test_confirmed_segments_join_the_code_prototype(emb):
    _, Y = corpus()
    Y = Y.copy()
    Y[np.flatnonzero(Y[:, 2] == 1)[3:], 2] = -1  # 3 positives: no classifier for 'markets'
    model, X, _ = fitted(emb, Y=Y)
    assert len(model.pieces_) == 3 + 3  # one piece per code + one centroid per code
    centroid = X[Y[:, 2] == 1].mean(axis=0)
    centroid /= np.linalg.norm(centroid)
    np.testing.assert_allclose(model.pieces_[-1], centroid, rtol=1e-5)
    assert model.piece_code_.tolist() == [0, 1, 2, 0, 1, 2]


# -- zero-shot calibration -------------------------------------------------------------------
def test_day_one_scores_carry_the_prior_of_how_many_codes_compete(emb):
    """With K codes allowed, a code nobody has decided on starts near 1/K, not at a cosine."""
    model, X, texts = fitted(emb, Y=np.full((60, 3), -1, np.int8))
    np.testing.assert_allclose(model.zs_coef_, [model.zs_margin, model.zs_absolute,
                                                model.zs_intercept])
    scores = model.predict_proba(X, texts=texts)
    assert 0.0 < scores.mean() < 0.6
    # the same segments with 2 of the 3 codes ruled out: the one left is likelier
    mask = np.zeros((len(X), 3), bool)
    mask[:, 0] = True
    alone = model.predict_proba(X, texts=texts, mask=mask)[:, 0]
    assert (alone > scores[:, 0]).all()
    assert model.thresholds_.tolist() == [model.zs_threshold] * 3


def test_study_decisions_recalibrate_the_codebook_scores(emb):
    """Ten positives across codes refit the study-level constants; codes without a classifier
    (min_positives out of reach) then score their own segments higher than the day-one map."""
    _, Y = corpus()
    day_one, X, texts = fitted(emb, Y=np.full((60, 3), -1, np.int8))
    studied, _, _ = fitted(emb, Y=Y, min_positives=1000)
    assert (studied.clf_index_ == -1).all()
    assert not np.allclose(studied.zs_coef_, day_one.zs_coef_)
    own = Y == 1
    before = day_one.predict_proba(X, texts=texts)
    after = studied.predict_proba(X, texts=texts)
    assert after[own].mean() > before[own].mean() + 0.2
    assert after[~own].mean() < 0.2
    # calibrated on held-out similarities: the mean score is near the share of positives
    assert abs(after.mean() - own.mean()) < 0.05


def test_few_decisions_move_a_code_little(emb):
    """Below the study-level threshold the per-code recalibration is shrunk to the day-one map."""
    Y = np.full((60, 3), -1, np.int8)
    Y[:2, 0] = (1, 0)
    day_one, X, texts = fitted(emb, Y=np.full((60, 3), -1, np.int8))
    model, _, _ = fitted(emb, Y=Y)
    np.testing.assert_allclose(model.zs_coef_, day_one.zs_coef_)
    assert abs(model.zs_a_[0] - 1) < 0.2 and abs(model.zs_b_[0]) < 0.2
    assert model.zs_a_[1:].tolist() == [1.0, 1.0]


def test_models_stored_before_the_calibrated_zero_shot_still_load(emb):
    """Arrays written before `zs_coef` existed: same scores as the fixed map they were made with."""
    model, X, texts = fitted(emb, Y=np.full((60, 3), -1, np.int8))
    arrays = model.to_arrays()
    meta = json.loads(arrays["meta"].tobytes())
    for name in ("zs_prior", "zs_margin", "zs_absolute", "zs_intercept", "zs_threshold",
                 "zs_shrink", "study_calibration_at", "context_embedding"):
        del meta["params"][name]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    del arrays["zs_coef"]
    old = CodeSuggester.from_arrays(arrays)
    S = old._similarity(X)
    best = S.max(axis=1, keepdims=True)
    f = ((S - 0.30) + (S - best)) / 0.05  # the map of the first release
    np.testing.assert_allclose(old.predict_proba(X, texts=texts), 1 / (1 + np.exp(-f)),
                               rtol=1e-6, atol=1e-9)
