"""CodeSuggester's topical parts: class-balanced fits, Platt scaling, thresholds shrunk towards a
shared cut, codebook-similarity columns, character n-grams; all stored as plain arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from coder.machine.embed import HashingEmbedder
from coder.machine.model import CodeSuggester, _best_threshold, _fit_logistic, _linear
from tests.test_model import TOPICS, corpus

ALL_ON = {"class_weight": "balanced", "calibrate": True, "threshold_shrink": 20.0,
          "codebook_features": 1.0, "char_features": 500, "min_df": 1}


@pytest.fixture
def emb():
    return HashingEmbedder(dim=128)


def fit(emb, Y=None, texts=None, **params):
    texts_, Y_ = corpus()
    texts = texts if texts is not None else texts_
    Y = Y if Y is not None else Y_
    X = emb.encode(texts)
    model = CodeSuggester(**params).fit(
        X, Y, code_ids=list(TOPICS), code_vectors=emb.encode(list(TOPICS.values())),
        texts=texts, groups=np.arange(len(texts)) // 10)
    return model, X, texts


def through_bytes(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """As the study stores them: dtype string, shape and raw bytes, nothing else."""
    stored = {k: (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())
              for k, a in arrays.items()}
    return {k: np.frombuffer(b, dtype=np.dtype(d)).reshape(s) for k, (d, s, b) in stored.items()}


def test_new_parameters_are_hyperparameters_only():
    model = CodeSuggester(**ALL_ON)
    assert {k: model.get_params()[k] for k in ALL_ON} == ALL_ON
    assert not [k for k in vars(model) if k.endswith("_")]
    assert clone(model).get_params() == model.get_params()


def test_balanced_solver_matches_scikit_learn_class_weight_balanced():
    rng = np.random.default_rng(3)
    Xd = rng.normal(size=(300, 5))
    Xs = sp.random(300, 20, density=0.1, random_state=3, format="csr")
    full = np.hstack([Xs.toarray(), Xd])
    Y = np.zeros((300, 2), np.int8)
    Y[:, 0] = full @ rng.normal(size=25) > 3.0      # a rare code
    Y[:, 1] = full @ rng.normal(size=25) > 0
    W, b = _fit_logistic(Xs, Xd, Y, C=0.5, tol=1e-12, balanced=True)
    for c in range(2):
        ref = LogisticRegression(C=0.5, class_weight="balanced", tol=1e-10,
                                 max_iter=5000).fit(full, Y[:, c])
        np.testing.assert_allclose(W[:, c], ref.coef_[0], atol=2e-3)
        assert b[c] == pytest.approx(ref.intercept_[0], abs=2e-3)
    assert Y[:, 0].mean() < 0.2
    # balanced: the rare code's raw probabilities are inflated compared with the plain fit
    plain_W, plain_b = _fit_logistic(Xs, Xd, Y, C=0.5, tol=1e-12)
    assert (_linear(Xs, Xd, W, b)[:, 0].mean() > _linear(Xs, Xd, plain_W, plain_b)[:, 0].mean())


def test_platt_scaling_turns_balanced_scores_back_into_probabilities(emb):
    _, Y = corpus()
    raw, X, texts = fit(emb, class_weight="balanced", calibrate=False)
    calibrated, _, _ = fit(emb, class_weight="balanced", calibrate=True, calibrate_at=6)
    np.testing.assert_array_equal(raw.platt_, np.tile([1.0, 0.0], (3, 1)))
    assert not np.allclose(calibrated.platt_, raw.platt_)
    # the mean calibrated score is near the share of positives (1/3 per code)
    assert abs(calibrated.predict_proba(X, texts=texts).mean() - Y.mean()) < 0.1


def test_shrunk_threshold_sits_between_a_codes_own_cut_and_the_shared_one(emb):
    model = CodeSuggester(threshold_shrink=4.0, zs_threshold_shrink=0.0)
    model.thresholds_ = np.full(2, 0.5)
    model.clf_index_ = np.array([0, 1])  # both codes have a classifier
    y_common = np.r_[np.ones(40), np.zeros(60)].astype(np.int8)
    y_rare = np.r_[np.ones(4), np.zeros(96)].astype(np.int8)
    rng = np.random.default_rng(0)
    scores = np.c_[np.where(y_common == 1, 0.7, 0.3) + rng.normal(0, 0.05, 100),
                   np.where(y_rare == 1, 0.2, 0.02) + rng.normal(0, 0.01, 100)]
    Y = np.c_[y_common, y_rare]
    rows = np.ones(100, bool)
    got = model._thresholds(scores, Y, rows)
    own = _best_threshold(scores[:, 1], y_rare == 1)[0]
    shared = _best_threshold(scores.T.ravel(), Y.T.ravel() == 1)[0]
    assert got[1] == pytest.approx((4 * own + 4.0 * shared) / (4 + 4.0))
    model.threshold_shrink = 0.0
    np.testing.assert_allclose(model._thresholds(scores, Y, rows)[1], own)
    # a code scored by the codebook alone is pulled by zs_threshold_shrink, the others not
    model.clf_index_ = np.array([0, -1])
    model.zs_threshold_shrink = 20.0
    got = model._thresholds(scores, Y, rows)
    shared = _best_threshold(scores.T.ravel(), Y.T.ravel() == 1)[0]
    assert got[1] == pytest.approx((4 * own + 20.0 * shared) / (4 + 20.0))
    assert got[0] == pytest.approx(_best_threshold(scores[:, 0], y_common == 1)[0])


def test_a_rare_code_whose_out_of_fold_scores_separate_is_still_suggested(emb):
    """Five positives of 'markets' among 45 segments: with balanced weights and the shrunk cut
    its threshold stays below its own segments' scores, so it is not 'never'."""
    texts, Y = corpus()
    keep = np.r_[np.flatnonzero(Y[:, 2] == 0), np.flatnonzero(Y[:, 2] == 1)[:5]]
    texts, Y = [texts[i] for i in keep], Y[keep]
    model, X, _ = fit(emb, Y=Y, texts=texts, min_positives=3, **ALL_ON)
    assert model.clf_index_[2] >= 0 and model.n_positives_[2] == 5
    assert model.thresholds_[2] < 1.0
    oof = model.out_of_fold()
    rare = Y[:, 2] == 1
    assert roc_auc_score(rare, oof["oof_score"][:, 2]) > 0.95  # they separate
    decided = oof["oof_score"] >= oof["oof_threshold"][oof["oof_fold"]]
    assert decided[rare, 2].mean() >= 0.8
    assert model.predict(X, texts=texts)[rare, 2].all()
    assert model.metrics_[2]["cv_recall"] >= 0.8


def test_codebook_columns_compare_with_the_codebook_text_only(emb):
    model, X, texts = fit(emb, codebook_features=1.0, char_features=0)
    assert model.n_book_pieces_ == 3 and len(model.pieces_) == 6  # + one centroid per code
    cols = model._codebook_columns(X)
    np.testing.assert_allclose(cols, X @ model.pieces_[:3].T, rtol=1e-5)
    Xs, Xd = model._design(None, X, None, None)
    assert Xd.shape[1] == X.shape[1] + 3
    # words of the segment and of the previous turn, the embedding, one column per code
    assert model.coef_.shape[1] == 2 * len(model.vocabulary_) + X.shape[1] + 3


def test_character_ngrams_are_capped_and_kept_as_arrays(emb):
    model, X, texts = fit(emb, char_features=50, min_df=1)
    assert len(model.char_vocabulary_) == 50 and model.char_vocabulary_.dtype.kind == "U"
    assert model.char_idf_.shape == (50,)
    n_words = len(model.vocabulary_)
    # words of the segment and of the previous turn, characters, the embedding
    assert model.coef_.shape[1] == 2 * n_words + 50 + X.shape[1]


def test_round_trip_through_bytes_gives_identical_predictions(emb):
    model, X, texts = fit(emb, **ALL_ON)
    arrays = model.to_arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    again = CodeSuggester.from_arrays(through_bytes(arrays))
    assert again.get_params() == model.get_params()
    np.testing.assert_array_equal(again.predict_proba(X, texts=texts),
                                  model.predict_proba(X, texts=texts))
    np.testing.assert_array_equal(again.predict(X, texts=texts), model.predict(X, texts=texts))
    meta = json.loads(arrays["meta"].tobytes())
    assert meta["params"]["class_weight"] == "balanced" and meta["n_book_pieces"] == 3


def test_models_stored_before_these_parts_load_with_the_same_scores(emb):
    """Arrays without platt/char_* and params without the new keys: the old model exactly."""
    model, X, texts = fit(emb, class_weight=None, calibrate=False, threshold_shrink=0.0,
                          codebook_features=0.0, char_features=0, piece_weight=0.5,
                          centroid_weight=None, coded_piece_weight=None)
    arrays = model.to_arrays()
    for name in ("platt", "char_vocabulary", "char_idf", "calib_group"):
        del arrays[name]
    meta = json.loads(arrays["meta"].tobytes())
    for name in ("class_weight", "calibrate", "threshold_shrink", "codebook_features",
                 "char_features", "piece_weight", "centroid_weight", "coded_piece_weight", "n_jobs",
                 "solver"):
        del meta["params"][name]
    del meta["n_book_pieces"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    old = CodeSuggester.from_arrays(through_bytes(arrays))
    np.testing.assert_array_equal(old.predict_proba(X, texts=texts),
                                  model.predict_proba(X, texts=texts))


def test_deterministic_with_a_seed(emb):
    a, X, texts = fit(emb, seed=3, **ALL_ON)
    b, _, _ = fit(emb, seed=3, **ALL_ON)
    np.testing.assert_array_equal(a.predict_proba(X, texts=texts), b.predict_proba(X, texts=texts))
    np.testing.assert_array_equal(a.thresholds_, b.thresholds_)
    np.testing.assert_array_equal(a.out_of_fold()["oof_threshold"],
                                  b.out_of_fold()["oof_threshold"])


def test_day_one_prototype_blends_the_codes_own_words_with_its_examples(emb):
    words = emb.encode(["finance money", "language words", "markets export"])
    examples = emb.encode(["bank loans", "grants capital", "english tongue"])
    pieces = np.vstack([words, examples])
    owner = np.array([0, 1, 2, 0, 0, 1])
    kind = np.array([0, 0, 0, 1, 1, 1])
    mean_all = np.vstack([pieces[owner == c].mean(axis=0) for c in range(3)])

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)
    day_one = {w: CodeSuggester(prototype_weight=w).fit(
        np.zeros((0, 128)), np.zeros((0, 3)), code_ids=list(TOPICS), code_vectors=unit(mean_all),
        piece_vectors=pieces, piece_code=owner, piece_kind=kind) for w in (1.0, 0.6, None)}
    np.testing.assert_allclose(day_one[1.0].prototypes_[0], unit(words[0]), rtol=1e-5)
    blend = unit(0.6 * unit(words[0]) + 0.4 * unit(examples[:2].mean(axis=0)))
    np.testing.assert_allclose(day_one[0.6].prototypes_[0], blend, rtol=1e-5)
    np.testing.assert_allclose(day_one[None].prototypes_, unit(mean_all), rtol=1e-5)
    # a code with no examples keeps its own words whatever the weight
    np.testing.assert_allclose(day_one[0.6].prototypes_[2], unit(words[2]), rtol=1e-5)
    assert len(day_one[0.6].pieces_) == 6  # every piece still counts on its own (best piece)


def test_similarity_is_the_cosine_with_the_code_vector_or_mixes_in_the_best_piece(emb):
    """piece_weight 0 (the default since 2026-12-02): the cosine with the code's vector only;
    0.5 (models before): half that, half the best cosine with one of its pieces."""
    texts, _ = corpus()
    X = emb.encode(texts)
    pieces = emb.encode(["finance money", "bank loans", "language words", "markets export"])
    owner = np.array([0, 0, 1, 2])
    kw = dict(code_ids=list(TOPICS), code_vectors=emb.encode(list(TOPICS.values())),
              piece_vectors=pieces, piece_code=owner)
    only = CodeSuggester(piece_weight=0.0).fit(np.zeros((0, 128)), np.zeros((0, 3)), **kw)
    half = CodeSuggester(piece_weight=0.5).fit(np.zeros((0, 128)), np.zeros((0, 3)), **kw)
    cos = X @ only.prototypes_.T
    np.testing.assert_allclose(only._similarity(X), cos, rtol=1e-5)
    best = np.stack([(X @ pieces[owner == c].T).max(axis=1) for c in range(3)], axis=1)
    np.testing.assert_allclose(half._similarity(X), 0.5 * cos + 0.5 * best, rtol=1e-5)
    assert not np.allclose(only._similarity(X), half._similarity(X))
    # after training, a code with confirmed segments (here 0 and 1) mixes in its best piece,
    # the centroid among them; a code without any keeps the cosine alone
    Y = np.zeros((len(X), 3), dtype=np.int8)
    Y[:4, 0] = Y[4:8, 1] = 1
    Y[8:] = 0
    coded = CodeSuggester(piece_weight=0.0, coded_piece_weight=0.5, min_positives=99).fit(
        X, Y, **kw)
    S = coded._similarity(X)
    cos = X @ coded.prototypes_.T
    best = np.stack([(X @ coded.pieces_[coded.piece_code_ == c].T).max(axis=1)
                     for c in range(3)], axis=1)
    np.testing.assert_allclose(S[:, :2], 0.5 * cos[:, :2] + 0.5 * best[:, :2], rtol=1e-5)
    np.testing.assert_allclose(S[:, 2], cos[:, 2], rtol=1e-5)
    assert len(coded.pieces_) == len(pieces) + 2  # the two centroids


def test_confirmed_segments_move_the_code_vector_a_fixed_share(emb):
    """After training a code's vector is normalise((1 - w) u0 + w centroid), w =
    centroid_weight; None (models before 2026-12-02) is the mean of every piece."""
    texts, Y = corpus()
    X = emb.encode(texts)
    u0 = emb.encode(list(TOPICS.values()))

    def unit(v):
        return v / np.linalg.norm(v)
    for w in (0.2, 0.6):
        model = CodeSuggester(centroid_weight=w).fit(X, Y, code_ids=list(TOPICS),
                                                     code_vectors=u0, texts=texts)
        for c in range(3):
            centroid = unit(X[Y[:, c] == 1].mean(axis=0))
            np.testing.assert_allclose(model.prototypes_[c], unit((1 - w) * u0[c] + w * centroid),
                                       rtol=1e-4, atol=1e-6)
    old = CodeSuggester(centroid_weight=None).fit(X, Y, code_ids=list(TOPICS), code_vectors=u0,
                                                  texts=texts)
    centroid = unit(X[Y[:, 0] == 1].mean(axis=0))
    np.testing.assert_allclose(old.prototypes_[0], unit((u0[0] + centroid) / 2), rtol=1e-4,
                               atol=1e-6)


def test_folds_fitted_two_at_a_time_give_the_same_model(emb):
    """The cross-validation folds, and the groups of codes labelled on different rows (here a
    code allowed on half the segments only), run on n_jobs threads; the model is the same."""
    texts, Y = corpus()
    X = emb.encode(texts)
    mask = np.ones(Y.shape, bool)
    mask[1::2, 2] = False
    models = [CodeSuggester(n_jobs=j, char_features=200, min_df=1, min_positives=3).fit(
        X, Y, code_ids=list(TOPICS), code_vectors=emb.encode(list(TOPICS.values())),
        texts=texts, mask=mask, groups=np.arange(len(texts)) // 10) for j in (1, 2)]
    assert (models[0].clf_index_ >= 0).all()
    for name in ("coef_", "intercept_", "thresholds_", "oof_scores_"):
        np.testing.assert_array_equal(getattr(models[0], name), getattr(models[1], name))


def test_character_ngrams_match_scikit_learns_char_wb():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from coder.machine.model import CharNgrams

    texts, _ = corpus()
    texts = [*texts, "A an  I", "Mm-hmm. Yeah!", "naïve café, naïve"]
    ref = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2,
                          dtype=np.float32)
    ours = CharNgrams(min_df=2)
    A, B = ref.fit_transform(texts[::2]), ours.fit_transform(texts[::2])
    assert ours.terms_.tolist() == ref.get_feature_names_out().tolist()
    np.testing.assert_allclose(ours.idf_, ref.idf_, rtol=1e-6)
    np.testing.assert_allclose(B.toarray(), A.toarray(), atol=1e-6)
    np.testing.assert_allclose(ours.transform(texts[1::2]).toarray(),
                               ref.transform(texts[1::2]).toarray(), atol=1e-6)
    capped = CharNgrams(min_df=1, max_features=40)
    capped.fit_transform(texts)
    counts = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), use_idf=False, norm=None)
    total = np.asarray(counts.fit_transform(texts).sum(axis=0)).ravel()
    assert len(capped.terms_) == 40
    assert min(total[counts.vocabulary_[t]] for t in capped.terms_) >= np.sort(total)[-40]


def test_character_ngrams_of_training_words_are_reused_exactly():
    """After fitting, transform reuses the training words' n-grams: the same matrix as a
    vectorizer restored from the stored terms and weights, on texts mixing known and new
    words, and on texts of new words only."""
    from coder.machine.model import CharNgrams

    texts, _ = corpus()
    fitted = CharNgrams(min_df=2)
    fitted.fit_transform(texts[::2])
    restored = CharNgrams(min_df=2).restore(fitted.terms_, fitted.idf_)
    for batch in (texts, texts[1::2], ["zyxwv qqqq", "", "Mm-hmm, zyxwv!"]):
        assert (fitted.transform(batch) != restored.transform(batch)).nnz == 0
    assert fitted._known[1].shape == (len(fitted._known[0]), len(fitted.terms_))


def test_word_tfidf_matches_scikit_learns_vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from coder.machine.model import WordNgrams

    texts, _ = corpus()
    texts = [*texts, "A an  I?", "Mm-hmm. Yeah! Yeah!", "naïve café, naïve", ""]
    for min_df, cap in ((1, None), (2, None), (1, 25), (2, 7)):
        ref = TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True,
                              min_df=min_df, max_features=cap, token_pattern=WordNgrams.TOKEN,
                              dtype=np.float32)
        ours = WordNgrams(min_df=min_df, max_features=cap)
        A, B = ref.fit_transform(texts[::2]), ours.fit_transform(texts[::2])
        assert ours.vocabulary_ == ref.vocabulary_  # the same terms, ties on the cap too
        np.testing.assert_array_equal(ours.idf_, ref.idf_)
        # to the bit, stored in the same order: a retrain learns exactly what it learnt before
        for a, b in ((A, B), (ref.transform(texts[1::2]), ours.transform(texts[1::2]))):
            assert b.dtype == a.dtype == np.float32
            for part in ("indptr", "indices", "data"):
                np.testing.assert_array_equal(getattr(b, part), getattr(a, part))
    with pytest.raises(ValueError):
        WordNgrams().fit_transform(["", "  "])


def test_folds_are_scikit_learns():
    from sklearn.model_selection import GroupKFold, KFold

    from coder.machine.model import _group_folds, _shuffled_folds

    groups = np.random.default_rng(3).integers(0, 11, 300)
    for k in (2, 3, 5):
        for ours, ref in ((_group_folds(groups, k),
                           GroupKFold(n_splits=k).split(np.zeros(300), groups=groups)),
                          (_shuffled_folds(97, k, 7),
                           KFold(n_splits=k, shuffle=True, random_state=7).split(np.zeros(97)))):
            ref = list(ref)
            assert len(ours) == len(ref) == k
            for (a, b), (c, d) in zip(ours, ref):
                np.testing.assert_array_equal(a, c)
                np.testing.assert_array_equal(b, d)


def test_prediction_by_distinct_texts_equals_the_design_matrix(emb):
    """predict_proba sums each block's logits per distinct text, a few rows at a time; the
    stacked design matrix of training gives the same logits."""
    model, X, texts = fit(emb, context_embedding=True, **ALL_ON)
    context_texts = [""] + texts[:-1]
    context = np.vstack([np.zeros((1, X.shape[1]), np.float32), X[:-1]])
    extra = np.zeros((len(X), 0))
    Xs, Xd = model._design(model._tfidf(texts, context_texts), X, context, extra)
    expected = _linear(Xs, Xd, model.coef_.T.astype(np.float64), model.intercept_)
    W = model.coef_.T.astype(np.float64)
    n_text = W.shape[0] - model._n_dense()
    got = (model._dense_logits(X, context, extra, W[n_text:], chunk=7) + model.intercept_
           + model._text_logits(texts, context_texts, W[:n_text]))
    # (the codebook columns are float32 products: their last digits follow BLAS's blocking)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_the_model_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = ("import sys, coder.machine.suggest, coder.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _logistic_problem(seed=5, n=300, sparse_cols=40, dense_cols=6, codes=3):
    rng = np.random.default_rng(seed)
    Xd = rng.normal(size=(n, dense_cols))
    Xs = sp.random(n, sparse_cols, density=0.1, random_state=seed, format="csr")
    full = np.hstack([Xs.toarray(), Xd])
    Y = (full @ rng.normal(size=(full.shape[1], codes)) + rng.normal(size=(n, codes)) > 0.5)
    return Xs, Xd, Y.astype(np.int8)


def test_coders_lbfgs_and_scipys_reach_the_same_fit():
    """`solver="lbfgs"` (coder's loop, which threads can share) and scipy's L-BFGS-B (models
    before 2026-12-02) minimise the same objective: the same weights, with codes labelled on
    different rows solved apart and unknown labels left out."""
    Xs, Xd, Y = _logistic_problem()
    Y[:100, 2] = -1
    ours = _fit_logistic(Xs, Xd, Y, C=2.0, tol=1e-12)
    scipys = _fit_logistic(Xs, Xd, Y, C=2.0, tol=1e-12, solver="scipy")
    np.testing.assert_allclose(ours[0], scipys[0], atol=1e-3)  # float32 products
    np.testing.assert_allclose(ours[1], scipys[1], atol=1e-3)
    with pytest.raises(ValueError, match="solver"):
        _fit_logistic(Xs, Xd, Y, C=2.0, solver="newton")


def test_n_gram_columns_absent_from_the_rows_get_zero_weight():
    """Columns no row has are left out of the problem (shorter vectors, the same optimum):
    their weights are 0 and the others are those of the fit without them."""
    Xs, Xd, Y = _logistic_problem()
    Xs = Xs.tolil()
    Xs[:, [3, 17]] = 0
    Xs = Xs.tocsr()
    Xs.eliminate_zeros()
    W, b = _fit_logistic(Xs, Xd, Y, C=1.0, tol=1e-12)
    np.testing.assert_array_equal(W[[3, 17]], 0.0)
    keep = [j for j in range(Xs.shape[1]) if j not in (3, 17)]
    W2, b2 = _fit_logistic(Xs[:, keep], Xd, Y, C=1.0, tol=1e-12)
    np.testing.assert_allclose(W[keep + list(range(Xs.shape[1], W.shape[0]))], W2, atol=1e-6)
    np.testing.assert_allclose(b, b2, atol=1e-6)
    # a warm start from weights that are not 0 there still leaves them 0
    W3, _ = _fit_logistic(Xs, Xd, Y, C=1.0, tol=1e-12, init=(np.ones_like(W), b))
    np.testing.assert_array_equal(W3[[3, 17]], 0.0)
    np.testing.assert_allclose(W3, W, atol=1e-3)


def test_auto_folds_are_five_then_three_for_large_studies(emb, monkeypatch):
    """cv="auto": 5 folds, 3 from LARGE_STUDY labelled segments on (the folds are most of a
    retrain); a number is used as given, anything else is refused before fitting."""
    import coder.machine.model as model_mod

    assert CodeSuggester().n_folds(model_mod.LARGE_STUDY - 1) == 5
    assert CodeSuggester().n_folds(model_mod.LARGE_STUDY) == 3
    assert CodeSuggester(cv=4).n_folds(10**6) == 4
    small, _, texts = fit(emb, min_positives=5)
    assert small.cv_["folds"] == 5 and small.cv_["grouped_by"] == "document"
    monkeypatch.setattr(model_mod, "LARGE_STUDY", len(texts))
    large, _, _ = fit(emb, min_positives=5)
    assert large.cv_["folds"] == 3 and set(large.oof_folds_.tolist()) == {0, 1, 2}
    for bad in ("five", 1, True):
        with pytest.raises(ValueError, match="cv must be"):
            fit(emb, cv=bad)


def test_auto_C_keeps_the_C_with_the_best_out_of_fold_macro_f1(emb, monkeypatch):
    """C="auto" fits every C of C_GRID on the same folds (each fold's later fit starting from
    its own earlier one) and keeps the C whose out-of-fold macro-F1 is highest for the full fit;
    both are recorded. A number is fitted alone."""
    import coder.machine.model as model_mod

    real_macro_f1, real_fit = CodeSuggester._macro_f1, model_mod._fit_logistic
    seen, full_fit_C = [], []

    def macro_f1(self, *args):
        seen.append(real_macro_f1(self, *args))
        return [0.9, 0.4][len(seen) - 1]  # the first C (1.0) wins

    def fit_logistic(Xs, Xd, Y, C, **kw):
        full_fit_C.append(C)
        return real_fit(Xs, Xd, Y, C, **kw)

    monkeypatch.setattr(CodeSuggester, "_macro_f1", macro_f1)
    monkeypatch.setattr(model_mod, "_fit_logistic", fit_logistic)
    model, _, _ = fit(emb, min_positives=5)
    assert len(seen) == 2 and all(0.0 <= f <= 1.0 for f in seen)
    assert model.C_ == 1.0 == full_fit_C[-1] and model.C_tried_ == {1.0: 0.9, 3.0: 0.4}
    assert model.cv_["C"] == 1.0 and model.cv_["C_tried"] == model.C_tried_
    seen.clear()
    fixed, _, _ = fit(emb, min_positives=5, C=2.0)
    assert not seen and fixed.C_ == 2.0 == full_fit_C[-1] and fixed.C_tried_ == {2.0: None}


def test_exclusive_codes_get_one_temperature_and_a_softmax(emb):
    """calibrate="auto": one code per segment (the corpus's three topics) -> one group, a shared
    temperature, probabilities that sum to one and keep each segment's order of codes; a
    per-code Platt map (calibrate=True) keeps neither."""
    model, X, texts = fit(emb, calibrate="auto", min_positives=5, calibrate_at=6)
    assert model.calib_group_.tolist() == [0, 0, 0]
    assert model.platt_[:, 0].min() == model.platt_[:, 0].max() > 0
    np.testing.assert_array_equal(model.platt_[:, 1], 0.0)
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(50, 3))
    P = model._calibrated(logits)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(P.argsort(axis=1), logits.argsort(axis=1))
    per_code, _, _ = fit(emb, calibrate=True, min_positives=5, calibrate_at=6)
    assert (per_code.calib_group_ == -1).all()
    assert not np.allclose(per_code._calibrated(logits).sum(axis=1), 1.0)
    stored = CodeSuggester.from_arrays(through_bytes(model.to_arrays()))
    np.testing.assert_array_equal(stored.predict_proba(X, texts=texts),
                                  model.predict_proba(X, texts=texts))


def test_codes_that_may_share_a_segment_are_calibrated_one_by_one(emb):
    """Segments with two codes (or none) -> no exclusive group: each code its own Platt map,
    as calibrate=True."""
    texts, Y = corpus()
    Y = Y.copy()
    Y[::4, 0] = 1  # a quarter of the segments also carry the first code
    auto, _, _ = fit(emb, Y=Y, calibrate="auto", min_positives=5, calibrate_at=6)
    per_code, _, _ = fit(emb, Y=Y, calibrate=True, min_positives=5, calibrate_at=6)
    assert (auto.calib_group_ == -1).all()
    np.testing.assert_array_equal(auto.platt_, per_code.platt_)
    assert not np.allclose(auto.platt_, np.tile([1.0, 0.0], (3, 1)))


def test_no_calibration_before_enough_documents(emb):
    """Fewer documents than ``calibrate_at`` (6 here): the classifiers' logits stay as fitted
    (identity maps), since fold models one document short misjudge the full model."""
    few, _, _ = fit(emb, calibrate="auto", min_positives=5, calibrate_at=7)
    np.testing.assert_array_equal(few.platt_, np.tile([1.0, 0.0], (3, 1)))
    assert (few.calib_group_ == -1).all()


def test_temperature_fits_the_spread_of_the_logits():
    """Logits twice as sharp as the truth warrants get a temperature near 1/2."""
    from coder.machine.model import _fit_temperature

    rng = np.random.default_rng(2)
    true = rng.normal(scale=2.0, size=(4000, 4))
    p = np.exp(true) / np.exp(true).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(4, p=row) for row in p])
    assert _fit_temperature(2.0 * true, truth) == pytest.approx(0.5, abs=0.05)
    assert _fit_temperature(np.zeros((0, 4)), np.zeros(0, int)) == 1.0
