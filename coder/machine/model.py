"""`CodeSuggester`: a scikit-learn estimator that scores every code for every segment.

Two sources of evidence, blended per code by how much labelled evidence the code has:

* **codebook** (zero-shot): the cosine similarity ``s_c`` between a segment's embedding and the
  code's vector. On day one that vector is normalise(w * mean of its own words (name,
  description, include) + (1 - w) * mean of its items and examples), ``prototype_weight``
  w = 0.7; once the code has confirmed segments it moves a fixed share towards their centroid,
  normalise(0.8 * day-one vector + 0.2 * centroid) (``centroid_weight``): the classifier is what
  learns from the segments, and this score stays the codebook's voice; and its similarity
  becomes half that cosine, half the best cosine with one of its pieces, the centroid being one
  (``coded_piece_weight``), a nearest-example vote that helps studies with a few coded
  documents. All were chosen on the train documents of the NHS and AnnoMI corpora
  (training/README.md); models before 2026-12-02 (``piece_weight`` 0.5) took half this cosine
  and half the best cosine with a single piece for every code. Three parts make its log-odds ``g_c = log(1 / (K - 1)) + m * margin_c +
  a * absolute_c + c0``: a prior (``K`` codes are allowed for the segment, so one of them
  applies with odds 1 : K-1), ``margin_c = (s_c - s_best) / zs_scale`` (``s_best``: the best
  similarity among the allowed codes) and ``absolute_c = (s_c - zs_offset) / zs_scale``.
  The day-one constants ``m, a, c0`` were fitted on coded interviews with two other codebooks
  (``training/fit_zero_shot.py``); once the study has 10 labelled positives they are refitted
  to its own decisions, and each code then gets ``z_c = sigmoid(alpha_c * g_c + beta_c)``,
  shrunk towards ``alpha = 1, beta = 0`` (``zs_shrink``) so that a code with a handful of
  decisions moves a little. These fits use out-of-fold similarities (a segment never sits in
  the centroid it is compared with), so the score is a calibrated probability, not a cosine.
* **classifier**: once a code has ``min_positives`` confirmed segments (and some negatives), a
  logistic regression over [TF-IDF of the segment's words, TF-IDF of the previous turn's words,
  TF-IDF of the segment's character 2-5-grams within words (``char_features``, robust to the
  misspellings of free-text answers), the segment's embedding, extra features such as speaker
  role] gives ``p_c``, fitted by coder's own L-BFGS (`_lbfgs`: scipy's holds the GIL, and the
  folds are fitted two at a time). Its regularisation is chosen per study (``C="auto"``): C 1
  or 3, whichever gives the higher out-of-fold macro-F1 on the same folds (5, or 3 from 5,000
  labelled segments on: ``cv="auto"``); a number fixes it. From 10 coded documents its
  probabilities are mapped on its out-of-fold logits (``calibrate="auto"``): Platt scaling per
  code for codes that may share a segment, one temperature and a softmax for a group of
  mutually exclusive codes (so they keep their order within a segment). Options measured on topical codebooks and off by default
  (see ``evaluation/NHS_RESULTS.md``): ``class_weight="balanced"``, ``threshold_shrink`` (each
  code's cut pulled towards one shared cut, by that many positives), ``codebook_features``
  (the best cosine with each code's pieces as columns). (The previous turn's embedding is an
  option too, off: on AnnoMI it cost time and lowered cross-validated F1.)

Blend: ``score_c = w_c * p_c + (1 - w_c) * z_c`` with ``w_c = n_pos / (n_pos + blend_k)``
for codes with a classifier, else 0. Thresholds per code maximise F1 on out-of-fold blended
scores (folds grouped by document), and the same predictions give the reported precision,
recall and F1. A code without a classifier (a handful of confirmed segments) has its cut pulled
towards the one shared cut, as if by ``zs_threshold_shrink`` = 20 positives at that cut: its
own best cut rests on one to seven segments (on NHS train, the first 20 respondents coded
gave a micro-F1 of 0.31 on other respondents with own cuts, 0.47 with pulled ones).
Everything learned is a plain array (`to_arrays` / `from_arrays`), never a pickle.
"""

from __future__ import annotations

import inspect
import json
import re
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize, minimize_scalar
from threadpoolctl import threadpool_limits

# scikit-learn is not imported here: its estimator contract is followed (get_params, fit,
# predict_proba; sklearn.base.clone works) but importing it costs about a second of every
# `coder train` and `coder suggest` (scipy.stats with it); what coder used of it, word TF-IDF
# and the folds, is `WordNgrams` and `_group_folds`/`_shuffled_folds`, which tests compare
# with scikit-learn's.

SOURCES = ("codebook", "blend", "classifier")
# from this many labelled segments on, cv="auto" fits 3 folds instead of 5
LARGE_STUDY = 5000
# the Cs C="auto" chooses from, by out-of-fold macro-F1 (weakest regularisation last)
C_GRID = (1.0, 3.0)

# Zero-shot log-odds constants used before a study has decisions of its own (margin, absolute
# similarity, intercept) and the day-one threshold; fitted by `training/fit_zero_shot.py`
# (the command and its output are in training/README.md).
ZS_DAY_ONE = {"margin": 0.332, "absolute": 0.216, "intercept": 0.89, "threshold": 0.191}
# The zero-shot part of models before 2026-12-02, as parameters: half the cosine with the code's
# vector and half the best single piece for every code, the centroid of confirmed segments one
# more piece, each code's cut its own, and the day-one constants fitted for that similarity.
# Models stored then lack these keys and load with them; benchmarks pin them for their
# "before" rows.
ZERO_SHOT_BEFORE_2026_12_02 = {"piece_weight": 0.5, "coded_piece_weight": None,
                               "centroid_weight": None, "zs_threshold_shrink": 0.0,
                               "zs_margin": 0.22, "zs_absolute": 0.204, "zs_intercept": 0.629,
                               "zs_threshold": 0.141}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


class _Estimator:
    """scikit-learn's BaseEstimator parameters: ``get_params``/``set_params`` over the
    ``__init__`` arguments, as sklearn.base.clone expects them."""

    @classmethod
    def _param_names(cls) -> list[str]:
        return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any):
        names = self._param_names()
        for name, value in params.items():
            if name not in names:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        default = type(self)()
        changed = {k: v for k, v in self.get_params().items()
                   if repr(v) != repr(getattr(default, k))}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


class CodeSuggester(_Estimator):
    """Scores codes for segments; see the module docstring for the formulas.

    Inputs (rows are segments): ``X`` the segment embeddings (n, d); keyword ``context`` the
    previous turn's embeddings (n, d); ``texts``/``context_texts`` the raw texts (TF-IDF);
    ``extra`` other dense features (n, k); ``mask`` (n, codes) which codes may apply to a row.
    ``Y`` (n, codes) holds 1 (positive), 0 (negative) or -1 (unknown).
    """

    # C=3, 5 folds, tol=1e-4 since 2026-12-02 (evaluation/bench_options.py, chosen by the
    # out-of-fold figures on train, dev only reported): steadier per-code cuts (NHS: the dev
    # answers whose codes change with the fold draw 22.7% -> 13.7%; AnnoMI rank-1 2.5% -> 1.3%)
    # and a higher NHS out-of-fold figure (0.637 -> 0.660), at no cost on AnnoMI's. cv="auto"
    # keeps 3 folds from LARGE_STUDY labelled segments on, where each fold's model already
    # learns from two thirds of them: the folds are most of a retrain's time (AnnoMI fully
    # coded, 7,622 turns: 5.9 -> 3.7 s, dev F1 and Brier unchanged within their noise).
    # C="auto" then picks C 1 or 3 per study by the folds' macro-F1: AnnoMI's behaviour codes
    # calibrate better at 1 (dev Brier 0.1020 -> 0.0991), NHS's rare topical codes need 3.
    def __init__(self, min_positives: int = 8, blend_k: float = 8.0,
                 C: float | str = "auto",
                 tfidf: bool = True, context: bool = True, context_embedding: bool = False,
                 max_features: int = 5000,
                 min_df: int = 3, embedding_weight: float = 1.0, cv: int | str = "auto",
                 zs_offset: float = 0.30, zs_scale: float = 0.05, zs_prior: bool = True,
                 zs_margin: float = ZS_DAY_ONE["margin"],
                 zs_absolute: float = ZS_DAY_ONE["absolute"],
                 zs_intercept: float = ZS_DAY_ONE["intercept"],
                 zs_threshold: float = ZS_DAY_ONE["threshold"], zs_shrink: float = 5.0,
                 study_calibration_at: int = 10, classifier_source_at: float = 0.9,
                 class_weight: str | None = None, calibrate: bool | str = "auto",
                 calibrate_at: int = 10,
                 threshold_shrink: float = 0.0, zs_threshold_shrink: float = 20.0,
                 codebook_features: float = 0.0,
                 char_features: int = 20000, char_ngram_range: tuple[int, int] = (2, 5),
                 prototype_weight: float | None = 0.7, piece_weight: float = 0.0,
                 coded_piece_weight: float | None = 0.5,
                 centroid_weight: float | None = 0.2,
                 tol: float = 1e-4, solver: str = "lbfgs", n_jobs: int = 2, seed: int = 0):
        self.min_positives = min_positives
        self.blend_k = blend_k
        self.C = C
        self.tfidf = tfidf
        self.context = context
        self.context_embedding = context_embedding
        self.max_features = max_features
        self.min_df = min_df
        self.embedding_weight = embedding_weight
        self.cv = cv
        self.zs_offset = zs_offset
        self.zs_scale = zs_scale
        self.zs_prior = zs_prior
        self.zs_margin = zs_margin
        self.zs_absolute = zs_absolute
        self.zs_intercept = zs_intercept
        self.zs_threshold = zs_threshold
        self.zs_shrink = zs_shrink
        self.study_calibration_at = study_calibration_at
        self.classifier_source_at = classifier_source_at
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.calibrate_at = calibrate_at
        self.threshold_shrink = threshold_shrink
        self.zs_threshold_shrink = zs_threshold_shrink
        self.codebook_features = codebook_features
        self.char_features = char_features
        self.char_ngram_range = char_ngram_range
        self.prototype_weight = prototype_weight
        self.piece_weight = piece_weight
        self.coded_piece_weight = coded_piece_weight
        self.centroid_weight = centroid_weight
        self.tol = tol
        self.solver = solver
        self.n_jobs = n_jobs
        self.seed = seed

    # -- zero-shot --------------------------------------------------------------------------
    def _similarity(self, X: np.ndarray) -> np.ndarray:
        return _similarity(X, self.prototypes_, self.pieces_, self.piece_code_,
                           self._piece_weights(self.piece_code_))

    def _piece_weights(self, piece_code) -> np.ndarray | float:
        """The best piece's share per code: ``coded_piece_weight`` for a code whose pieces
        include the centroid of its confirmed segments, else ``piece_weight``."""
        if self.coded_piece_weight is None:
            return self.piece_weight
        out = np.full(len(self.code_ids_), float(self.piece_weight))
        out[np.asarray(piece_code)[self.n_book_pieces_:]] = self.coded_piece_weight
        return out

    def _zero_shot_parts(self, S: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """(n, codes, 4): prior log-odds, margin, absolute similarity, 1 (for the intercept)."""
        allowed = S if mask is None else np.where(mask, S, -np.inf)
        best = allowed.max(axis=1, keepdims=True)
        best = np.where(np.isfinite(best), best, 0.0)
        K = np.full((len(S), 1), S.shape[1]) if mask is None else \
            np.asarray(mask, bool).sum(axis=1, keepdims=True)
        prior = np.where(K >= 2, -np.log(np.maximum(K - 1, 1)), 0.0) if self.zs_prior else 0.0
        return np.stack(np.broadcast_arrays(prior, (S - best) / self.zs_scale,
                                            (S - self.zs_offset) / self.zs_scale,
                                            np.ones_like(S)), axis=-1)

    def _zero_shot_logit(self, parts: np.ndarray) -> np.ndarray:
        return parts[..., 0] + parts[..., 1:] @ self.zs_coef_

    def _zero_shot(self, X: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        g = self._zero_shot_logit(self._zero_shot_parts(self._similarity(X), mask))
        return _sigmoid(g * self.zs_a_ + self.zs_b_)

    # -- classifier features ----------------------------------------------------------------
    def _vectorizer(self) -> WordNgrams:
        return WordNgrams(min_df=self.min_df, max_features=self.max_features)

    def _char_vectorizer(self) -> CharNgrams:
        return CharNgrams(min_df=self.min_df, max_features=self.char_features or None,
                          ngram_range=tuple(self.char_ngram_range))

    def _tfidf(self, texts, context_texts, fit: bool = False):
        """TF-IDF rows for the segments and their previous turns, analysing each distinct text
        once (most previous turns are segments too, and "Mm-hmm." recurs hundreds of times)."""
        texts = list(texts)
        both = texts + (list(context_texts) if self.context else [])
        index: dict[str, int] = {}
        inverse = np.fromiter((index.setdefault(t, len(index)) for t in both), dtype=np.int64,
                              count=len(both))
        distinct = list(index)
        if fit:
            rows = self.vectorizer_.fit_transform(distinct)
        else:
            rows = self.vectorizer_.transform(distinct)
        rows = rows.tocsr()
        blocks = [rows[inverse[:len(texts)]]]
        if self.context:
            blocks.append(rows[inverse[len(texts):]])
        if self.char_vectorizer_ is not None:  # character n-grams of the segment itself
            seg = distinct[:int(inverse[:len(texts)].max()) + 1] if texts else []
            chars = (self.char_vectorizer_.fit_transform(seg) if fit
                     else self.char_vectorizer_.transform(seg)).tocsr()
            blocks.append(chars[inverse[:len(texts)]])
        return sp.hstack(blocks, format="csr", dtype=np.float64)

    def _design(self, Xs, X, context, extra):
        """The classifier's inputs: the sparse TF-IDF block (or None) and the dense float64 block."""
        n = len(X)
        dense = [np.asarray(X, dtype=np.float64) * self.embedding_weight]
        if self.context and self.context_embedding:
            ctx = np.zeros_like(dense[0]) if context is None else np.asarray(context, np.float64)
            dense.append(ctx * self.embedding_weight)
        if self.n_extra_:
            ex = np.zeros((n, self.n_extra_)) if extra is None else np.asarray(extra, np.float64)
            dense.append(ex)
        if self.codebook_features:
            dense.append(self.codebook_features * self._codebook_columns(X))
        return Xs, np.hstack(dense)

    @property
    def uses_context_vectors(self) -> bool:
        """Whether ``context`` (the previous turns' embeddings) is read at all."""
        return bool(self.context and self.context_embedding)

    def _n_dense(self) -> int:
        """How many dense columns `_design` gives (after the TF-IDF columns)."""
        d = self.prototypes_.shape[1]
        return (d * (1 + int(self.uses_context_vectors)) + self.n_extra_
                + (len(self.code_ids_) if self.codebook_features else 0))

    def _dense_logits(self, X, context, extra, W: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """``dense @ W`` for `_design`'s dense block, a few thousand rows at a time: at 30,000
        segments the whole float64 block is 100 MB of fresh memory for one small product."""
        n = len(X)
        out = np.zeros((n, W.shape[1]))
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            _, dense = self._design(
                None, X[rows], None if context is None else context[rows],
                None if extra is None else extra[rows])
            out[rows] = dense @ W
        return out

    def _text_logits(self, texts, context_texts, W: np.ndarray) -> np.ndarray:
        """``tfidf @ W`` for `_tfidf`'s columns without building that matrix: each distinct
        text is analysed and multiplied once, and its row of logits shared by every segment
        (and previous turn) with that text."""
        texts = list(texts)
        both = texts + (list(context_texts) if self.context else [])
        index = {t: i for i, t in enumerate(dict.fromkeys(both))}
        inverse = np.fromiter(map(index.__getitem__, both), dtype=np.int64, count=len(both))
        distinct = list(index)
        seg, n_words = inverse[:len(texts)], len(self.vectorizer_.vocabulary_)
        rows = self.vectorizer_.transform(distinct)
        out = np.asarray(rows @ W[:n_words])[seg]
        at = n_words
        if self.context:
            out += np.asarray(rows @ W[at:at + n_words])[inverse[len(texts):]]
            at += n_words
        if self.char_vectorizer_ is not None and len(texts):
            chars = self.char_vectorizer_.transform(distinct[:int(seg.max()) + 1])
            out += np.asarray(chars @ W[at:])[seg]
        return out

    def _codebook_columns(self, X) -> np.ndarray:
        """(n, codes): each row's best cosine with one piece of the codebook's own text (never
        a centroid of confirmed segments, which would hold the row itself)."""
        n_book = self.n_book_pieces_
        S = np.asarray(X, np.float32) @ self.pieces_[:n_book].T
        out = np.full((len(S), len(self.code_ids_)), -1.0)
        owner = self.piece_code_[:n_book]
        for c in range(out.shape[1]):
            cols = owner == c
            if cols.any():
                out[:, c] = S[:, cols].max(axis=1)
        return out

    # -- fit --------------------------------------------------------------------------------
    def fit(self, X, Y, *, code_ids, code_vectors, piece_vectors=None, piece_code=None,
            piece_kind=None, context=None, texts=None, context_texts=None, extra=None,
            mask=None, groups=None):
        """Learn prototypes, calibration, classifiers and thresholds from labelled segments.

        ``code_vectors`` (codes, d) are the codes' mean text vectors; ``piece_vectors`` with
        ``piece_code`` (index into ``code_ids``) the single pieces. ``piece_kind`` (0: the
        code's own words, name, description, include; 1: its items and examples) lets
        ``prototype_weight`` w make each code's vector normalise(w * own words + (1 - w) *
        items and examples) instead of the mean of every piece. With no labels at all the
        result is the codebook-only model.
        """
        # The products here are small: one BLAS thread is faster, and it does not fight the
        # OpenMP threads torch leaves spinning after encoding (3-5x slower fits otherwise).
        with threadpool_limits(limits=1, user_api="blas"):
            if piece_kind is not None and self.prototype_weight is not None:
                code_vectors = _blended_prototypes(code_vectors, piece_vectors, piece_code,
                                                   piece_kind, self.prototype_weight)
            return self._fit(X, Y, code_ids=code_ids, code_vectors=code_vectors,
                             piece_vectors=piece_vectors, piece_code=piece_code, context=context,
                             texts=texts, context_texts=context_texts, extra=extra, mask=mask,
                             groups=groups)

    def _fit(self, X, Y, *, code_ids, code_vectors, piece_vectors, piece_code, context, texts,
             context_texts, extra, mask, groups):
        X = np.asarray(X, dtype=np.float32).reshape(-1, np.asarray(code_vectors).shape[1])
        Y = np.asarray(Y, dtype=np.int8).reshape(len(X), len(code_ids))
        n, k = Y.shape
        n_folds = self.n_folds(n)  # a bad cv fails before any work
        self.code_ids_ = np.asarray(list(code_ids), dtype=str)
        prototypes = np.array(code_vectors, dtype=np.float32)
        if piece_vectors is None:
            piece_vectors, piece_code = prototypes, np.arange(k)
        pieces = np.asarray(piece_vectors, dtype=np.float32)
        piece_code = np.asarray(piece_code, dtype=np.int32)
        if mask is not None:
            Y = np.where(np.asarray(mask, bool), Y, -1).astype(np.int8)
        # confirmed segments join the codebook text: their centroid is one more piece per code
        self.n_book_pieces_ = len(pieces)
        self.prototypes_, self.pieces_, self.piece_code_ = self._with_centroids(
            prototypes, pieces, piece_code, X, Y)
        texts = list(texts) if texts is not None else [""] * n
        context_texts = list(context_texts) if context_texts is not None else [""] * n
        self.n_extra_ = 0 if extra is None else int(np.asarray(extra).shape[1])
        self.n_positives_ = (Y == 1).sum(axis=0).astype(np.int32)
        self.n_negatives_ = (Y == 0).sum(axis=0).astype(np.int32)

        # 1. zero-shot calibration, on out-of-fold similarities: a segment's own vector is never
        #    in the centroid it is compared with (in-sample, every confirmed segment looks
        #    typical of its code and the calibration comes out overconfident)
        self.zs_coef_ = np.array([self.zs_margin, self.zs_absolute, self.zs_intercept])
        self.zs_a_ = np.ones(k, dtype=np.float64)
        self.zs_b_ = np.zeros(k, dtype=np.float64)
        parts = np.zeros((n, k, 4))
        fold_of = np.full(n, -1, dtype=np.int32)  # -1: not held out (a single segment)
        if n:
            S = np.zeros((n, k), dtype=np.float32)
            folds = self._folds(n, groups, n_folds) if n >= 2 else [(np.arange(n), np.arange(n))]
            for f, (tr, te) in enumerate(folds):
                fold = self._with_centroids(prototypes, pieces, piece_code, X[tr], Y[tr])
                S[te] = _similarity(X[te], *fold, self._piece_weights(fold[2]))
                if n >= 2:
                    fold_of[te] = f
            parts = self._zero_shot_parts(S, mask)
        known = Y >= 0
        if (self.n_positives_.sum() >= self.study_calibration_at
                and self.n_negatives_.sum() >= self.study_calibration_at):
            # the study's own decisions, pooled over codes, replace the day-one constants
            self.zs_coef_ = _fit_offset_logistic(parts[known][:, 1:], Y[known] == 1,
                                                 parts[known][:, 0], self.zs_coef_, 1.0)
        g = self._zero_shot_logit(parts)
        for c in range(k):
            rows = known[:, c]
            if self.n_positives_[c] and self.n_negatives_[c]:
                self.zs_a_[c], self.zs_b_[c] = _fit_offset_logistic(
                    np.c_[g[rows, c], np.ones(rows.sum())], Y[rows, c] == 1, 0.0,
                    np.array([1.0, 0.0]), self.zs_shrink)
        Z = _sigmoid(g * self.zs_a_ + self.zs_b_)

        # 2. classifiers for codes with enough positives
        trained = [c for c in range(k)
                   if self.n_positives_[c] >= self.min_positives and self.n_negatives_[c] >= 2]
        self.vectorizer_ = self.char_vectorizer_ = None
        self.vocabulary_ = self.char_vocabulary_ = np.zeros(0, dtype=str)
        self.idf_ = self.char_idf_ = np.zeros(0, dtype=np.float32)
        self.platt_ = np.tile([1.0, 0.0], (len(trained), 1))
        self.calib_group_ = np.full(len(trained), -1, dtype=np.int32)
        self.clf_index_ = np.full(k, -1, dtype=np.int32)
        self.clf_index_[trained] = np.arange(len(trained), dtype=np.int32)
        self.weights_ = np.zeros(k, dtype=np.float64)
        npos = self.n_positives_[trained].astype(np.float64)
        self.weights_[trained] = npos / (npos + self.blend_k)
        self.thresholds_ = np.full(k, self.zs_threshold, dtype=np.float64)
        self.metrics_: list[dict[str, Any]] = []
        oof_scores = Z.copy()
        self.C_, self.C_tried_ = None, {}  # the C fitted (C="auto": chosen), and the Cs tried
        if trained:
            labelled = np.flatnonzero((Y[:, trained] >= 0).any(axis=1))
            tfidf = None
            if self.tfidf:
                self.vectorizer_ = self._vectorizer()
                if self.char_features:
                    self.char_vectorizer_ = self._char_vectorizer()
                try:
                    tfidf = self._tfidf([texts[i] for i in labelled],
                                        [context_texts[i] for i in labelled], fit=True)
                    self.vocabulary_, self.idf_ = _vocabulary(self.vectorizer_)
                    if self.char_vectorizer_ is not None:
                        self.char_vocabulary_ = self.char_vectorizer_.terms_
                        self.char_idf_ = self.char_vectorizer_.idf_
                except ValueError:  # empty vocabulary: texts with no words
                    self.vectorizer_ = self.char_vectorizer_ = None
            Xs, Xd = self._design(tfidf, X[labelled], None if context is None else
                                  np.asarray(context)[labelled],
                                  None if extra is None else np.asarray(extra)[labelled])
            Yt = Y[np.ix_(labelled, trained)]
            oof = np.zeros(Yt.shape)
            g = None if groups is None else np.asarray(groups)[labelled]
            folds = self._folds(len(labelled), g, n_folds)

            # each fold starts from the base rates: starting from weights that saw the
            # held-out fold would leak it into the "out-of-fold" scores. The folds' problems
            # (one per group of codes) are independent, and their products and L-BFGS steps
            # release the GIL: they share ``n_jobs`` threads, the costliest first. With
            # C="auto" each C of `C_GRID` is fitted on the same folds, each fold starting from
            # its own fit at the previous C (its own rows only: nothing leaks), and the C whose
            # out-of-fold macro-F1 is highest is kept.
            # the map is learnt on fold models and applied to the full one: with a handful of
            # documents, a fold's model (one document fewer) is much worse than the full one
            # and the map comes out too flat (AnnoMI train, 5 documents coded: Brier on other
            # train documents 0.145 -> 0.151, ECE 0.030 -> 0.070; from 10 on it helps)
            n_docs = 0 if g is None else len(np.unique(g))
            calibrate = bool(self.calibrate) and n_docs >= self.calibrate_at
            grid = C_GRID if self.C == "auto" else (float(self.C),)
            p = Xd.shape[1] + (0 if Xs is None else Xs.shape[1])
            starts: list = [None] * len(folds)
            tried = []
            for C in grid:
                fold_fits = _solve_problems(
                    [_logistic_problems(Xs, Xd, Yt, C, rows=tr, tol=self.tol, init=start,
                                        balanced=self.balanced, solver=self.solver)
                     for (tr, _), start in zip(folds, starts)], p, len(trained), self.n_jobs)
                starts = fold_fits
                oof = np.zeros(Yt.shape)
                for (_, te), (W_f, b_f) in zip(folds, fold_fits):
                    oof[te] = _linear(None if Xs is None else Xs[te], Xd[te], W_f, b_f)
                f1 = None
                if len(grid) > 1:
                    f1 = self._macro_f1(oof, Yt, Y, Z[labelled], trained, calibrate)
                tried.append((C, f1, fold_fits, oof))
            self.C_, _, fold_fits, oof = max(tried, key=lambda t: -np.inf if t[1] is None
                                             else t[1])
            self.C_tried_ = {float(C): None if f1 is None else round(f1, 4)
                             for C, f1, _, _ in tried}
            oof = self._calibrate_on(oof, Yt, Y, trained, calibrate)
            # the full fit may start from the folds' mean (it sees all rows anyway): it then
            # needs about half the iterations, and converges to the same optimum
            init = (np.mean([w for w, _ in fold_fits], axis=0),
                    np.mean([b for _, b in fold_fits], axis=0))
            W, b = _fit_logistic(Xs, Xd, Yt, self.C_, tol=self.tol, init=init,
                                 solver=self.solver, balanced=self.balanced,
                                 n_jobs=self.n_jobs)
            self.coef_ = W.T.astype(np.float32)
            self.intercept_ = b.astype(np.float32)
            for j, c in enumerate(trained):
                w = self.weights_[c]
                oof_scores[labelled, c] = w * oof[:, j] + (1 - w) * Z[labelled, c]
        else:
            n_features = 0
            self.coef_ = np.zeros((0, n_features), dtype=np.float32)
            self.intercept_ = np.zeros(0, dtype=np.float32)

        # 3. thresholds and cross-validated quality per code
        chosen = self._thresholds(oof_scores, Y, np.ones(n, bool))
        for c in range(k):
            rows = Y[:, c] >= 0
            entry = {"code": str(self.code_ids_[c]), "support": int(self.n_positives_[c]),
                     "negatives": int(self.n_negatives_[c]), "source": self.source_of(c),
                     "threshold": self.zs_threshold, "precision": None, "recall": None, "f1": None,
                     "evaluated": None}
            if self.n_positives_[c] and self.n_negatives_[c]:
                t = chosen[c]
                p, r, f = _f1_at(oof_scores[rows, c], Y[rows, c] == 1, t)
                self.thresholds_[c] = t
                entry.update(threshold=round(t, 4), precision=round(p, 4), recall=round(r, 4),
                             f1=round(f, 4),
                             evaluated="cross-validated" if self.clf_index_[c] >= 0
                             else "in-sample (calibration only)")
            self.metrics_.append(entry)
        self._keep_out_of_fold(oof_scores, Y, mask, fold_of, groups)
        return self

    def _macro_f1(self, logits, Yt, Y, Z, trained, calibrate: bool) -> float:
        """Mean over the classifiers' codes of the best F1 of their out-of-fold blended
        scores: how `C="auto"` compares the Cs of `C_GRID` (each with its own calibration)."""
        P = self._calibrate_on(logits, Yt, Y, trained, calibrate)
        f1s = []
        for j, c in enumerate(trained):
            rows = Yt[:, j] >= 0
            y = Yt[rows, j] == 1
            if y.any() and not y.all():
                w = self.weights_[c]
                f1s.append(_best_threshold(w * P[rows, j] + (1 - w) * Z[rows, c], y)[3])
        return float(np.mean(f1s)) if f1s else 0.0

    def _calibrate_on(self, logits, Yt, Y, trained, calibrate: bool) -> np.ndarray:
        """Set the calibration maps from these out-of-fold logits (identity if not
        ``calibrate``) and return the logits as probabilities."""
        self.platt_[:] = [1.0, 0.0]
        self.calib_group_[:] = -1
        if calibrate:
            self._fit_calibration(logits, Yt, Y, trained)
        return self._calibrated(logits)

    def _fit_calibration(self, logits, Yt, Y, trained) -> None:
        """Turn the classifiers' out-of-fold logits into probabilities (``calibrate``).

        ``True``: Platt scaling per code (a balanced fit's raw probabilities overstate every
        code). ``"auto"``: the same for codes decided independently (several may apply to a
        segment), but a group of mutually exclusive codes (every segment labelled on them has
        exactly one, as in one-code-per-turn schemes) gets one temperature and a softmax
        over the group: its probabilities sum to one, and the codes keep their order within
        each segment (a per-code map reorders them and costs the rarer codes their rank-1
        place). Such a group is left as it is until each of its codes has a classifier."""
        at = {c: j for j, c in enumerate(trained)}
        independent = np.ones(len(trained), bool)
        for g, codes in enumerate(_exclusive_groups(Y) if self.calibrate == "auto" else []):
            cols = [at[c] for c in codes if c in at]
            independent[cols] = False
            if len(cols) < len(codes):
                # some of the group have no classifier yet: a softmax over the others would
                # hand them the group's whole probability, a per-code map would reorder them
                continue
            rows = (Yt[:, cols] >= 0).all(axis=1) & ((Yt[:, cols] == 1).sum(axis=1) == 1)
            self.platt_[cols] = [_fit_temperature(logits[np.ix_(rows, cols)],
                                                  Yt[np.ix_(rows, cols)].argmax(axis=1)), 0.0]
            self.calib_group_[cols] = g
        for j in np.flatnonzero(independent):
            rows = Yt[:, j] >= 0
            self.platt_[j] = _fit_offset_logistic(
                np.c_[logits[rows, j], np.ones(rows.sum())], Yt[rows, j] == 1, 0.0,
                np.array([1.0, 0.0]), 1.0)

    def _calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from classifier logits (rows, classifiers), as `_fit_calibration` set."""
        logits = np.asarray(logits, dtype=np.float64)
        out = _sigmoid(logits * self.platt_[:, 0] + self.platt_[:, 1])
        for g in np.unique(self.calib_group_[self.calib_group_ >= 0]):
            cols = np.flatnonzero(self.calib_group_ == g)
            z = logits[:, cols] * self.platt_[cols, 0]
            e = np.exp(z - z.max(axis=1, keepdims=True))
            out[:, cols] = e / e.sum(axis=1, keepdims=True)
        return out

    def _keep_out_of_fold(self, oof_scores, Y, mask, fold_of, groups) -> None:
        """Keep the out-of-fold scores of the rows fitted on, with thresholds chosen without
        each fold, and score each code by them: ``oof_scores_`` (rows, codes), ``oof_folds_``
        (rows), ``oof_thresholds_`` (folds, codes), ``cv_`` (how the folds were made) and
        ``cv_precision``/``cv_recall``/``cv_f1`` in ``metrics_``. A row's decision is its
        out-of-fold score at or above its fold's threshold, so no label of a row chose the
        threshold applied to it, and no fold's model saw the row (nor, with folds grouped by
        document, any segment of its document)."""
        n, k = Y.shape
        scores = oof_scores if mask is None else np.where(np.asarray(mask, bool), oof_scores, 0.0)
        folds = int(fold_of.max()) + 1 if n else 0
        by_document = groups is not None and len(np.unique(groups)) >= self.n_folds(n)
        self.cv_ = {"folds": folds, "rows": int(n),
                    "grouped_by": None if not folds else "document" if by_document
                    else "segment", "C": self.C_, "C_tried": self.C_tried_}
        self.oof_scores_ = scores.astype(np.float32)
        self.oof_folds_ = fold_of.astype(np.int32)
        self.oof_thresholds_ = np.tile(self.thresholds_, (folds, 1))
        known = Y >= 0
        for f in range(folds):
            self.oof_thresholds_[f] = self._thresholds(scores, Y, fold_of != f)
        decided = scores >= (self.oof_thresholds_[fold_of] if folds else self.thresholds_)
        for c, entry in enumerate(self.metrics_):
            rows = known[:, c] & (fold_of >= 0)
            y, hit = Y[rows, c] == 1, decided[rows, c]
            tp, fp, fn = int((y & hit).sum()), int((~y & hit).sum()), int((y & ~hit).sum())
            entry.update(
                cv_precision=round(tp / (tp + fp), 4) if tp + fp else None,
                cv_recall=round(tp / (tp + fn), 4) if tp + fn else None,
                cv_f1=round(2 * tp / (2 * tp + fp + fn), 4) if 2 * tp + fp + fn else None)

    def _thresholds(self, scores: np.ndarray, Y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Per code, the cut maximising F1 on ``rows``' scores, shrunk towards the one cut that
        maximises F1 over every code's cells: ``(n_c * own + shrink * shared) / (n_c + shrink)``
        (``n_c`` positives; ``shrink`` is ``zs_threshold_shrink`` for a code scored by the
        codebook alone, fewer than ``min_positives`` confirmed segments, else
        ``threshold_shrink``). A rare code's own best cut rests on a few segments and often
        sits above or below all the others once they leave; the shared cut keeps it sensible.
        Codes without both positives and negatives on ``rows`` keep ``thresholds_``."""
        out = self.thresholds_.copy()
        decidable = []
        for c in range(Y.shape[1]):
            r = rows & (Y[:, c] >= 0)
            y = Y[r, c] == 1
            if y.any() and not y.all():
                out[c] = _best_threshold(scores[r, c], y)[0]
                decidable.append((c, r, int(y.sum())))
        shrink = np.where(self.clf_index_ >= 0, self.threshold_shrink, self.zs_threshold_shrink)
        if decidable and (shrink > 0).any():
            cells = np.concatenate([scores[r, c] for c, r, _ in decidable])
            truth = np.concatenate([Y[r, c] == 1 for c, r, _ in decidable])
            shared = _best_threshold(cells, truth)[0]
            for c, _, n_pos in decidable:
                out[c] = (n_pos * out[c] + shrink[c] * shared) / (n_pos + shrink[c])
        return out

    def _with_centroids(self, prototypes, pieces, piece_code, X, Y):
        return _with_centroids(prototypes, pieces, piece_code, X, Y, self.centroid_weight)

    @property
    def balanced(self) -> bool:
        return self.class_weight == "balanced"

    def out_of_fold(self) -> dict[str, np.ndarray]:
        """The kept out-of-fold predictions as plain arrays (stored beside the model)."""
        return {"oof_score": self.oof_scores_, "oof_fold": self.oof_folds_,
                "oof_threshold": self.oof_thresholds_}

    def n_folds(self, n: int) -> int:
        """The folds for ``n`` labelled segments: ``cv``, or with ``cv="auto"`` 5, and 3 from
        `LARGE_STUDY` segments on."""
        if self.cv == "auto":
            return 3 if n >= LARGE_STUDY else 5
        if isinstance(self.cv, bool) or not isinstance(self.cv, int) or self.cv < 2:
            raise ValueError(f"cv must be 'auto' or a number of folds from 2, not {self.cv!r}")
        return self.cv

    def _folds(self, n: int, groups, k: int):
        if groups is not None and len(np.unique(groups)) >= k:
            return _group_folds(np.asarray(groups), k)
        return _shuffled_folds(n, max(2, min(k, n)), self.seed)

    # -- predict ----------------------------------------------------------------------------
    def source_of(self, c: int) -> str:
        w = self.weights_[c]
        if w <= 0:
            return "codebook"
        return "classifier" if w >= self.classifier_source_at else "blend"

    def predict_proba(self, X, *, context=None, texts=None, context_texts=None, extra=None,
                      mask=None) -> np.ndarray:
        """Calibrated scores (n, codes) in 0..1; codes not allowed by ``mask`` score 0."""
        X = np.asarray(X, dtype=np.float32)
        n, k = len(X), len(self.code_ids_)
        if n == 0:
            return np.zeros((0, k))
        scores = self._zero_shot(X, mask)
        trained = np.flatnonzero(self.clf_index_ >= 0)
        if len(trained):
            texts = list(texts) if texts is not None else [""] * n
            context_texts = list(context_texts) if context_texts is not None else [""] * n
            W = self.coef_.T.astype(np.float64)
            n_text = W.shape[0] - self._n_dense()
            logits = self._dense_logits(X, context, extra, W[n_text:]) + self.intercept_
            if self.vectorizer_ is not None:
                logits += self._text_logits(texts, context_texts, W[:n_text])
            P = self._calibrated(logits)
            for c in trained:
                w = self.weights_[c]
                scores[:, c] = w * P[:, self.clf_index_[c]] + (1 - w) * scores[:, c]
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        return scores

    def predict(self, X, **kw) -> np.ndarray:
        """Multi-label decisions (n, codes): score at or above the code's threshold."""
        return (self.predict_proba(X, **kw) >= self.thresholds_).astype(np.int8)

    # -- storage ----------------------------------------------------------------------------
    ARRAYS = ("code_ids_", "prototypes_", "pieces_", "piece_code_", "n_positives_",
              "n_negatives_", "zs_coef_", "zs_a_", "zs_b_", "clf_index_", "coef_", "intercept_", "weights_",
              "thresholds_", "vocabulary_", "idf_", "platt_", "char_vocabulary_", "char_idf_",
              "calib_group_")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to predict, as plain arrays (hyperparameters as JSON bytes)."""
        arrays = {name.rstrip("_"): np.asarray(getattr(self, name)) for name in self.ARRAYS}
        meta = {"params": self.get_params(), "n_extra": self.n_extra_, "metrics": self.metrics_,
                "n_book_pieces": int(self.n_book_pieces_)}
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        return arrays

    def as_stored(self) -> CodeSuggester:
        """This model as the study gives it back (`from_arrays` of `to_arrays`): what
        ``coder suggest`` will score with. Its character n-gram vectorizer has the same terms
        and weights as the fitted one, which is kept for the n-grams of its training words."""
        stored = type(self).from_arrays(self.to_arrays())
        if stored.char_vectorizer_ is not None:
            stored.char_vectorizer_._known = getattr(self.char_vectorizer_, "_known", ({}, None))
        return stored

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CodeSuggester:
        meta = json.loads(np.asarray(arrays["meta"], dtype=np.uint8).tobytes().decode())
        params = dict(meta["params"])
        # models stored before these parameters existed: the previous turn's embedding was
        # used whenever context was on, and the zero-shot log-odds were margin + absolute
        params.setdefault("context_embedding", bool(params.get("context", False)))
        params.setdefault("prototype_weight", None)  # the mean of every piece
        for name, value in ZERO_SHOT_BEFORE_2026_12_02.items():
            params.setdefault(name, value)
        params.setdefault("char_features", 0)
        params.setdefault("solver", "scipy")  # fitted by scipy's L-BFGS-B before 2026-12-02
        params.setdefault("calibrate", False)
        params["char_ngram_range"] = tuple(params.get("char_ngram_range", (2, 5)))
        if "zs_coef" not in arrays:
            params.update(zs_prior=False, zs_margin=1.0, zs_absolute=1.0, zs_intercept=0.0)
            arrays = {**arrays, "zs_coef": np.array([1.0, 1.0, 0.0])}
        # models stored before Platt scaling and character n-grams: identity, none
        n_clf = len(np.asarray(arrays["intercept"]))
        arrays = {"platt": np.tile([1.0, 0.0], (n_clf, 1)), "char_vocabulary": np.zeros(0, str),
                  "char_idf": np.zeros(0, np.float32),
                  "calib_group": np.full(n_clf, -1, np.int32), **arrays}
        model = cls(**params)
        for name in cls.ARRAYS:
            setattr(model, name, np.asarray(arrays[name.rstrip("_")]))
        model.n_extra_ = meta["n_extra"]
        model.metrics_ = meta["metrics"]
        model.n_book_pieces_ = int(meta.get("n_book_pieces", len(model.pieces_)))
        model.vectorizer_ = model.char_vectorizer_ = None
        if model.tfidf and len(model.vocabulary_):
            model.vectorizer_ = _restored(model._vectorizer(), model.vocabulary_, model.idf_)
            if len(model.char_vocabulary_):
                model.char_vectorizer_ = model._char_vectorizer().restore(
                    model.char_vocabulary_, model.char_idf_)
        return model


class CharNgrams:
    """TF-IDF of character 2-5-grams within words: what ``TfidfVectorizer(analyzer="char_wb",
    ngram_range=(2, 5), sublinear_tf=True, min_df, max_features)`` gives (tests compare them),
    built from each distinct word once. A word's n-grams never depend on its neighbours, so a
    text's counts are (texts x words) @ (words x n-grams), two sparse products in C instead of
    scikit-learn's Python loop over every n-gram of every text (3-5x faster; interview turns
    repeat their words). ``terms_`` and ``idf_`` are plain arrays."""

    def __init__(self, min_df: int = 1, max_features: int | None = None,
                 ngram_range: tuple[int, int] = (2, 5)):
        self.min_df = min_df
        self.max_features = max_features
        self.ngram_range = ngram_range

    def grams(self, word: str) -> list[str]:
        """scikit-learn's char_wb n-grams of one whitespace-separated word."""
        w = " " + word + " "
        out = []
        for n in range(self.ngram_range[0], self.ngram_range[1] + 1):
            if len(w) <= n:
                out.append(w)  # a short word counts once, whole
                break
            out.extend(w[i:i + n] for i in range(len(w) - n + 1))
        return out

    @staticmethod
    def _words(texts) -> tuple[sp.csr_matrix, list[str]]:
        """(texts x distinct words) counts; words numbered in order of first appearance."""
        split = [t.lower().split() for t in texts]
        every = list(chain.from_iterable(split))
        index = {w: i for i, w in enumerate(dict.fromkeys(every))}
        indices = np.fromiter(map(index.__getitem__, every), dtype=np.int32, count=len(every))
        indptr = np.zeros(len(split) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, split), dtype=np.int64, count=len(split)),
                  out=indptr[1:])
        counts = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                               shape=(len(split), len(index)))
        counts.sum_duplicates()
        return counts, list(index)

    def _grams_of(self, words: list[str], vocabulary: dict[str, int] | None):
        """(words x n-grams) counts; with ``vocabulary``, its columns only."""
        grams = [self.grams(w) for w in words]
        every = list(chain.from_iterable(grams))
        if vocabulary is None:  # numbered in order of first appearance
            index = {g: i for i, g in enumerate(dict.fromkeys(every))}
            cols = np.fromiter(map(index.__getitem__, every), dtype=np.int64, count=len(every))
        else:
            index = vocabulary
            cols = np.fromiter(map(index.get, every, repeat(-1)), dtype=np.int64,
                               count=len(every))
        known = cols >= 0
        rows = np.repeat(np.arange(len(words)),
                         np.fromiter(map(len, grams), dtype=np.int64, count=len(grams)))
        m = sp.csr_matrix((np.ones(int(known.sum()), np.float32), (rows[known], cols[known])),
                          shape=(len(words), len(index)))  # duplicates summed
        return m, index

    def _weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Sublinear tf times idf, rows scaled to unit length: to the bit what coder computed
        before as four sparse products (``counts @ diags(idf)``, its square summed per row in
        float32, ``diags(1 / norm) @ counts``), done on the stored values in one pass each."""
        counts = counts.tocsr()
        data = 1.0 + np.log(counts.data)
        data *= self.idf_[counts.indices]
        squares = sp.csr_matrix((data * data, counts.indices, counts.indptr), shape=counts.shape)
        norms = np.sqrt(np.asarray(squares.sum(axis=1)).ravel())
        row = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        data *= (1.0 / np.where(norms > 0, norms, 1.0))[row]
        return sp.csr_matrix((data.astype(np.float32), counts.indices, counts.indptr),
                             shape=counts.shape)

    def fit_transform(self, texts) -> sp.csr_matrix:
        tw, words = self._words(texts)
        wg, index = self._grams_of(words, None)
        counts = (tw @ wg).tocsc()
        df = np.diff(counts.indptr)
        keep = np.flatnonzero(df >= self.min_df)
        if self.max_features and len(keep) > self.max_features:
            total = np.asarray(counts.sum(axis=0)).ravel()
            terms = np.array(list(index), dtype=object)
            # the most frequent, ties by the n-gram's text: the same choice every time
            order = np.lexsort((terms[keep], -total[keep]))
            keep = keep[order[:self.max_features]]
        if not len(keep):
            raise ValueError("no character n-grams left")
        terms = np.array(list(index))[keep]
        order = np.argsort(terms, kind="stable")
        keep, terms = keep[order], terms[order]
        n = counts.shape[0]
        self.terms_ = terms.astype(str)
        self.idf_ = (np.log((1 + n) / (1 + df[keep])) + 1).astype(np.float32)
        self.vocabulary_ = {str(t): i for i, t in enumerate(self.terms_)}
        # the training words' n-grams, kept for `transform`: suggesting right after training
        # (`coder train --suggest`) reads mostly the same words, and cutting each word into
        # n-grams is most of this class's time
        self._known = ({w: i for i, w in enumerate(words)}, wg.tocsc()[:, keep].tocsr())
        return self._weigh(counts[:, keep])

    def transform(self, texts) -> sp.csr_matrix:
        tw, words = self._words(texts)
        return self._weigh(tw @ self._word_grams(words))

    def _word_grams(self, words: list[str]) -> sp.csr_matrix:
        """(words x terms) counts, from the training words' where known."""
        index, known = getattr(self, "_known", ({}, None))
        at = np.fromiter((index.get(w, -1) for w in words), dtype=np.int64, count=len(words))
        new = np.flatnonzero(at < 0)
        if len(new) == len(words):
            return self._grams_of(words, self.vocabulary_)[0]
        fresh = self._grams_of([words[i] for i in new], self.vocabulary_)[0]
        # rows: the known words' rows of `known`, then the new words' of `fresh`
        at[new] = known.shape[0] + np.arange(len(new))
        return sp.vstack([known, fresh], format="csr")[at]

    def restore(self, terms: np.ndarray, idf: np.ndarray) -> CharNgrams:
        self.terms_ = np.asarray(terms).astype(str)
        self.idf_ = np.asarray(idf, dtype=np.float32)
        self.vocabulary_ = {str(t): i for i, t in enumerate(self.terms_)}
        return self


def _sublinear_tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """float32 counts weighed as scikit-learn's TfidfTransformer(sublinear_tf=True) does, to
    the bit: 1 + log(count), times idf, each row divided by its length (float32 squares summed
    in double, in the order the row stores them)."""
    data = np.log(counts.data, dtype=np.float32)
    data += 1.0
    data *= np.asarray(idf, np.float32)[counts.indices]
    lengths = np.diff(counts.indptr)
    row = np.repeat(np.arange(counts.shape[0]), lengths)
    norms = np.sqrt(np.bincount(row, weights=(data * data).astype(np.float64),
                                minlength=counts.shape[0]))
    norms[norms == 0] = 1.0
    data = (data / norms[row]).astype(np.float32)
    return sp.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)


class WordNgrams:
    """TF-IDF of words and pairs of words: what scikit-learn's ``TfidfVectorizer(
    lowercase=True, ngram_range=(1, 2), sublinear_tf=True, min_df, max_features,
    token_pattern=TOKEN, dtype=float32)`` gives (the same vocabulary, chosen the same way;
    tests compare them), with each text's terms looked up in one pass in C instead of
    scikit-learn's Python loop over every term of every text (most of a re-suggest's time at
    30,000 segments). ``vocabulary_`` and ``idf_`` are what it keeps."""

    TOKEN = r"(?u)\b\w+\b|[?!]"

    def __init__(self, min_df: int = 1, max_features: int | None = None):
        self.min_df = min_df
        self.max_features = max_features
        self.token_pattern = self.TOKEN

    def _terms(self, texts) -> tuple[list[str], np.ndarray]:
        """Every text's words, then its pairs of neighbouring words, one list for all texts,
        and how many terms each text has."""
        tokenize = re.compile(self.token_pattern).findall
        terms: list[str] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            words = tokenize(text.lower())
            pairs = [a + " " + b for a, b in zip(words, words[1:])]
            terms += words
            terms += pairs
            lengths[i] = len(words) + len(pairs)
        return terms, lengths

    @staticmethod
    def _counts(rows, cols, shape) -> sp.csr_matrix:
        return sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=shape)

    def fit_transform(self, texts) -> sp.csr_matrix:
        texts = list(texts)
        terms, lengths = self._terms(texts)
        if not terms:
            raise ValueError("empty vocabulary")
        # numbered as they first appear, then renumbered in the terms' order, as scikit-learn
        # does (so each row stores its terms in the same order: the same sums to the bit)
        index = {t: i for i, t in enumerate(dict.fromkeys(terms))}
        counts = self._counts(np.repeat(np.arange(len(texts)), lengths),
                              np.fromiter(map(index.__getitem__, terms), dtype=np.int64,
                                          count=len(terms)), (len(texts), len(index)))
        names = sorted(index)
        column = np.empty(len(names), dtype=counts.indices.dtype)
        column[[index[t] for t in names]] = np.arange(len(names))
        counts.indices = column.take(counts.indices)
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        mask = df >= self.min_df
        if self.max_features is not None and mask.sum() > self.max_features:
            # the most frequent terms, chosen by the very expression scikit-learn uses (its
            # ties fall the same way)
            tfs = np.asarray(counts.sum(axis=0)).ravel()
            chosen = (-tfs[mask]).argsort()[:self.max_features]
            keep = np.zeros(len(df), dtype=bool)
            keep[np.where(mask)[0][chosen]] = True
            mask = keep
        kept = np.where(mask)[0]
        if not len(kept):
            raise ValueError("After pruning, no terms remain")
        self.vocabulary_ = {names[i]: j for j, i in enumerate(kept)}
        idf = np.full(len(kept), len(texts) + 1, dtype=np.float32)
        idf /= df[kept].astype(np.float32) + 1.0
        np.log(idf, out=idf)
        self.idf_ = idf + np.float32(1.0)
        return _sublinear_tfidf(counts[:, kept], self.idf_)

    def transform(self, texts) -> sp.csr_matrix:
        texts = list(texts)
        terms, lengths = self._terms(texts)
        cols = np.fromiter(map(self.vocabulary_.get, terms, repeat(-1)), dtype=np.int64,
                           count=len(terms))
        known = cols >= 0
        counts = self._counts(np.repeat(np.arange(len(texts)), lengths)[known], cols[known],
                              (len(texts), len(self.vocabulary_)))
        return _sublinear_tfidf(counts, self.idf_)


def _group_folds(groups: np.ndarray, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's ``GroupKFold(n_splits).split`` (no shuffling): the largest groups first,
    each to the fold with the fewest rows so far."""
    unique, group_of = np.unique(groups, return_inverse=True)
    sizes = np.bincount(group_of.ravel())
    order = np.argsort(sizes, kind="stable")[::-1]
    rows_in = np.zeros(n_splits)
    fold_of_group = np.zeros(len(unique))
    for g in order:
        lightest = np.argmin(rows_in)
        rows_in[lightest] += sizes[g]
        fold_of_group[g] = lightest
    fold = fold_of_group[group_of.ravel()]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_splits)]


def _shuffled_folds(n: int, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's ``KFold(n_splits, shuffle=True, random_state=seed).split``."""
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(n_splits, n // n_splits, dtype=int)
    sizes[:n % n_splits] += 1
    out, start = [], 0
    for size in sizes:
        test = np.zeros(n, dtype=bool)
        test[order[start:start + size]] = True
        out.append((np.flatnonzero(~test), np.flatnonzero(test)))
        start += size
    return out


def _vocabulary(vec: WordNgrams) -> tuple[np.ndarray, np.ndarray]:
    """A fitted vectorizer's terms in column order and their idf, as plain arrays."""
    terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
    return np.asarray(terms, dtype=str), vec.idf_.astype(np.float32)


def _restored(vec: WordNgrams, terms: np.ndarray, idf: np.ndarray) -> WordNgrams:
    vec.vocabulary_ = {str(t): i for i, t in enumerate(terms)}
    vec.idf_ = np.asarray(idf, dtype=np.float32)
    return vec


def _similarity(X, prototypes, pieces, piece_code, piece_weight=0.5) -> np.ndarray:
    """(1 - piece_weight) x the cosine with the code's vector + piece_weight x the best cosine
    with one of its pieces (``piece_weight`` one number or one per code)."""
    X = np.asarray(X, dtype=np.float32)
    mean_sim = X @ prototypes.T
    if not np.any(piece_weight):
        return mean_sim
    piece_sim = X @ pieces.T
    best_piece = np.full_like(mean_sim, -1.0)
    for c in range(len(prototypes)):
        cols = piece_code == c
        if cols.any():
            best_piece[:, c] = piece_sim[:, cols].max(axis=1)
    return (1 - piece_weight) * mean_sim + piece_weight * best_piece


def _blended_prototypes(code_vectors, pieces, piece_code, piece_kind, w: float) -> np.ndarray:
    """Each code's vector: normalise(w * mean of its own words + (1 - w) * mean of its items
    and examples), each mean normalised first; a code with only one kind keeps that kind."""
    out = np.array(code_vectors, dtype=np.float32)
    pieces = np.asarray(pieces, dtype=np.float32)
    piece_code, piece_kind = np.asarray(piece_code), np.asarray(piece_kind)

    def unit(v):
        return v / (np.linalg.norm(v) or 1.0)
    for c in range(len(out)):
        own = pieces[(piece_code == c) & (piece_kind == 0)]
        ex = pieces[(piece_code == c) & (piece_kind == 1)]
        if len(own) and len(ex):
            out[c] = unit(w * unit(own.mean(axis=0)) + (1 - w) * unit(ex.mean(axis=0)))
        elif len(own) or len(ex):
            out[c] = unit((own if len(own) else ex).mean(axis=0))
    return out


def _with_centroids(prototypes, pieces, piece_code, X, Y, weight: float | None = None):
    """(prototypes, pieces, piece_code) with each code's confirmed-segment centroid added as
    one more piece. The code's vector becomes normalise((1 - weight) * its day-one vector +
    weight * centroid); ``weight`` None (models before 2026-12-02): the mean of all its
    pieces, centroid included."""
    prototypes = np.array(prototypes, dtype=np.float32)
    extra_pieces, extra_owner = [], []
    for c in range(Y.shape[1]):
        positive = Y[:, c] == 1
        if positive.any():
            v = X[positive].mean(axis=0)
            extra_pieces.append(v / (np.linalg.norm(v) or 1.0))
            extra_owner.append(c)
    if not extra_pieces:
        return prototypes, pieces, piece_code
    pieces = np.vstack([pieces, np.asarray(extra_pieces, np.float32)])
    piece_code = np.r_[piece_code, extra_owner].astype(np.int32)
    for c, centroid in zip(extra_owner, extra_pieces):
        if weight is None:
            v = pieces[piece_code == c].mean(axis=0)
        else:
            v = (1 - weight) * prototypes[c] + weight * centroid
        prototypes[c] = v / (np.linalg.norm(v) or 1.0)
    return prototypes, pieces, piece_code


def _exclusive_groups(Y: np.ndarray, share: float = 0.98) -> list[list[int]]:
    """Groups of codes (columns of ``Y``) labelled on the same rows where (nearly) every
    labelled row has exactly one positive among them."""
    labelled = Y >= 0
    groups: dict[bytes, list[int]] = {}
    for c in range(Y.shape[1]):
        if labelled[:, c].any():
            groups.setdefault(np.packbits(labelled[:, c]).tobytes(), []).append(c)
    return [codes for codes in groups.values()
            if len(codes) >= 2 and ((Y[np.ix_(labelled[:, codes[0]], codes)] == 1).sum(axis=1)
                                    == 1).mean() >= share]


def _fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The ``a`` minimising the log-loss of softmax(a * logits) for the rows' true columns."""
    rows = np.arange(len(truth))

    def loss(log_a):
        z = np.exp(log_a) * logits
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, truth]))

    if not len(truth):
        return 1.0
    return float(np.exp(minimize_scalar(loss, bounds=(-5.0, 3.0), method="bounded").x))


def _fit_offset_logistic(F: np.ndarray, y: np.ndarray, offset, w0: np.ndarray,
                         shrink: float, weight=1.0) -> np.ndarray:
    """Weights ``w`` of ``P(y) = sigmoid(offset + F @ w)`` (rows weighted by ``weight``), with
    an L2 pull of strength ``shrink`` towards ``w0`` (few labels leave the weights near ``w0``)."""
    F = np.asarray(F, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    offset = np.broadcast_to(np.asarray(offset, dtype=np.float64), t.shape)
    weight = np.broadcast_to(np.asarray(weight, dtype=np.float64), t.shape)

    def objective(w):
        z = offset + F @ w
        d = w - w0
        loss = float((weight * (np.logaddexp(0.0, z) - t * z)).sum()) + 0.5 * shrink * float(d @ d)
        return loss, F.T @ (weight * (_sigmoid(z) - t)) + shrink * d

    return minimize(objective, np.array(w0, dtype=np.float64), jac=True, method="L-BFGS-B",
                    options={"maxiter": 200}).x


def _linear(Xs, Xd, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Logits for [Xs | Xd] @ W + b, W stacked as (sparse columns, dense columns)."""
    ps = 0 if Xs is None else Xs.shape[1]
    out = Xd @ W[ps:] + b
    if Xs is not None:
        out += Xs @ W[:ps]
    return np.asarray(out)


def _fit_logistic(Xs, Xd, Y: np.ndarray, C: float, max_iter: int = 500, tol: float = 1e-8,
                  init: tuple[np.ndarray, np.ndarray] | None = None, balanced: bool = False,
                  solver: str = "lbfgs", n_jobs: int = 1):
    """One L2 logistic regression per column of ``Y`` (1 positive, 0 negative, -1 unknown),
    fitted jointly with L-BFGS: the objective of scikit-learn's
    ``LogisticRegression(C=C, solver='lbfgs')`` summed over codes (intercepts unpenalised).

    Joint fitting shares every pass over the data between codes, which is what makes a full
    retrain of thousands of segments take seconds; tests check it against scikit-learn. Codes
    labelled on different rows (interviewer-only and respondent-only codes) are solved as
    separate problems, each on its own rows only (`_logistic_problems`): the objective is a sum
    over codes, so the optimum is the same and each pass reads half the data.

    ``balanced``: scikit-learn's ``class_weight="balanced"`` per code (positives weighted
    n / (2 n_pos), negatives n / (2 n_neg)), so a code with 20 positives among 4,000 rows is
    not learnt as "never".
    """
    problems = _logistic_problems(Xs, Xd, Y, C, max_iter=max_iter, tol=tol, init=init,
                                  balanced=balanced, solver=solver)
    return _solve_problems([problems], Xd.shape[1] + (0 if Xs is None else Xs.shape[1]),
                           Y.shape[1], n_jobs)[0]


def _logistic_problems(Xs, Xd, Y: np.ndarray, C: float, *, rows: np.ndarray | None = None,
                       max_iter: int = 500, tol: float = 1e-8,
                       init: tuple[np.ndarray, np.ndarray] | None = None,
                       balanced: bool = False,
                       solver: str = "lbfgs") -> list[tuple[list[int], int, Any]]:
    """The independent problems of `_fit_logistic` on ``rows`` (a fold; None: all): one per
    group of codes labelled on the same rows, as (columns of ``Y``, cost, a function solving
    it). The rows are taken from the design matrix when a problem is solved, on its thread."""
    rows = np.arange(len(Y)) if rows is None else np.asarray(rows)
    labelled = Y[rows] >= 0
    groups: dict[bytes, list[int]] = {}
    for j in range(Y.shape[1]):
        groups.setdefault(np.packbits(labelled[:, j]).tobytes(), []).append(j)
    problems = []
    for cols in groups.values():
        at = rows[labelled[:, cols[0]]]
        sub_init = None if init is None else (init[0][:, cols], init[1][cols])

        def solve(at=at, cols=cols, sub_init=sub_init):
            whole = len(at) == len(Y)
            return _fit_logistic_block(
                None if Xs is None else Xs if whole else Xs[at], Xd if whole else Xd[at],
                Y[np.ix_(at, cols)], C, max_iter=max_iter, tol=tol, init=sub_init,
                balanced=balanced, solver=solver)
        problems.append((cols, len(at) * len(cols), solve))
    return problems


def _solve_problems(problem_sets: list[list[tuple[list[int], int, Any]]], p: int, k: int,
                    n_jobs: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Solve several fits' problems (`_logistic_problems`) on ``n_jobs`` threads, the costliest
    first so that no thread is left with a long one at the end, and put each fit together."""
    tasks = sorted(((cost, i, cols, solve) for i, problems in enumerate(problem_sets)
                    for cols, cost, solve in problems), key=lambda t: -t[0])
    fits = [(np.zeros((p, k)), np.zeros(k)) for _ in problem_sets]
    with ThreadPoolExecutor(max_workers=max(1, min(n_jobs, len(tasks)))) as pool:
        for (_, i, cols, _), (W_g, b_g) in zip(tasks, pool.map(lambda t: t[3](), tasks)):
            fits[i][0][:, cols], fits[i][1][cols] = W_g, b_g
    return fits


def _fit_logistic_block(Xs, Xd, Y: np.ndarray, C: float, *, max_iter: int, tol: float,
                        init: tuple[np.ndarray, np.ndarray] | None, balanced: bool,
                        solver: str):
    """`_fit_logistic` for codes labelled on every row of ``Y``."""
    ps = 0 if Xs is None else Xs.shape[1]
    p, k = ps + Xd.shape[1], Y.shape[1]
    if not len(Y):
        return np.zeros((p, k)), np.zeros(k)
    M = (Y >= 0).astype(np.float64)
    T = (Y == 1).astype(np.float64)
    if balanced:
        n_pos = np.maximum(T.sum(axis=0), 1.0)
        n_neg = np.maximum(M.sum(axis=0) - T.sum(axis=0), 1.0)
        n_all = n_pos + n_neg
        M = M * np.where(T > 0, n_all / (2 * n_pos), n_all / (2 * n_neg))

    # n-gram columns absent from these rows have weight 0 at the optimum and never move from
    # it: leaving them out gives the same fit with shorter vectors (a fold lacks some n-grams,
    # interviewer turns lack the participants')
    active = np.arange(ps)
    if Xs is not None:
        Xs = Xs.tocsr()
        active = np.flatnonzero(np.bincount(Xs.indices, minlength=ps))
        column = np.full(ps, -1, dtype=np.int64)
        column[active] = np.arange(len(active))
        Xs = sp.csr_matrix((Xs.data, column[Xs.indices], Xs.indptr), shape=(len(Y), len(active)))
    pa = len(active)
    q = pa + Xd.shape[1]
    # the products in float32, sparse ones too (half the memory traffic; the sums stay float64),
    # both with the n-gram matrix by columns: scipy's products with a CSC matrix and with the
    # transpose of a CSR one (a CSC view) were the fastest (2.1 and 1.1 ms against 2.4 and
    # 2.2 ms by rows, for 3,000 AnnoMI turns x 30,000 n-grams x 4 codes)
    Xd32 = np.ascontiguousarray(Xd, dtype=np.float32)
    Xs32 = None if Xs is None else Xs.astype(np.float32).tocsc()
    XsT = None if Xs is None else Xs.astype(np.float32).tocsr().T

    def objective(theta):
        W = theta[:q * k].reshape(q, k)
        b = theta[q * k:]
        Z = (Xd32 @ W[pa:].astype(np.float32)).astype(np.float64) + b
        if Xs32 is not None:
            Z += Xs32 @ W[:pa].astype(np.float32)
        loss = C * float((M * (np.logaddexp(0.0, Z) - T * Z)).sum()) + 0.5 * float((W * W).sum())
        G = C * M * (_sigmoid(Z) - T)
        gW = (G.astype(np.float32).T @ Xd32).T.astype(np.float64)  # faster than Xd32.T @ G
        if XsT is not None:
            gW = np.vstack([np.asarray(XsT @ G.astype(np.float32), dtype=np.float64), gW])
        gW = gW + W
        return loss, np.concatenate([gW.ravel(), G.sum(axis=0)])

    if init is None:  # start from the base rates: fewer iterations than from zero
        rate = np.clip((T * M).sum(axis=0) / np.maximum(M.sum(axis=0), 1), 1e-3, 1 - 1e-3)
        theta0 = np.concatenate([np.zeros(q * k), np.log(rate / (1 - rate))])
    else:
        theta0 = np.concatenate([np.vstack([init[0][active], init[0][ps:]]).ravel(), init[1]])
    if solver == "lbfgs":
        theta = _lbfgs(objective, theta0, max_iter=max_iter, ftol=tol, gtol=1e-6)
    elif solver == "scipy":  # scipy's L-BFGS-B: models before 2026-12-02 (one thread at a time)
        theta = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                         options={"maxiter": max_iter, "gtol": 1e-6, "ftol": tol}).x
    else:
        raise ValueError(f"solver must be 'lbfgs' or 'scipy', not {solver!r}")
    W = np.zeros((p, k))
    W[active] = theta[:pa * k].reshape(pa, k)
    W[ps:] = theta[pa * k:q * k].reshape(q - pa, k)
    return W, theta[q * k:]


def _lbfgs(objective, x0: np.ndarray, *, max_iter: int, ftol: float, gtol: float,
           history: int = 10) -> np.ndarray:
    """Minimise a smooth convex ``objective`` (returning value and gradient) by L-BFGS (the
    two-loop recursion, Nocedal & Wright, Algorithm 7.4, with a weak Wolfe line search),
    stopping as scipy's L-BFGS-B does: a relative decrease below ``ftol``, a gradient below
    ``gtol`` or ``max_iter`` steps.

    Not scipy's ``minimize(method="L-BFGS-B")``: that holds the GIL for its own work (a third
    of a fit here), so the folds fitted on two threads ran barely faster than one after the
    other; every step of this loop is a numpy operation over the whole vector, which releases it
    (``np.dot``, not ``@``: numpy's matmul of two vectors holds the GIL, measured). The vectors
    are updated in place, in buffers kept for the whole fit. The loop is memory-bound (40 passes
    over 100,000 floats per step): about 30% of a fit on AnnoMI, 10% less in place than with a
    temporary per update; a compact (matrix) form of the recursion was slower.
    """
    x = np.array(x0, dtype=np.float64)
    n = len(x)
    f, g = objective(x)
    # history + 1 slots for the curvature pairs: a new pair is written to the spare slot and
    # becomes part of the history only if its curvature is positive
    S, Y = np.empty((history + 1, n)), np.empty((history + 1, n))
    rho = np.zeros(history + 1)
    alpha = np.zeros(history + 1)
    order: list[int] = []  # slots in the history, oldest first
    spare = 0
    d, tmp, x_new = np.empty(n), np.empty(n), np.empty(n)
    for _ in range(max_iter):
        if not np.isfinite(f) or max(float(g.max()), -float(g.min())) <= gtol:
            break
        np.negative(g, out=d)
        for j in reversed(order):
            alpha[j] = rho[j] * np.dot(S[j], d)
            d -= np.multiply(Y[j], alpha[j], out=tmp)
        if order:
            j = order[-1]
            d *= 1.0 / (rho[j] * np.dot(Y[j], Y[j]))  # s.y / y.y
        else:  # the first step has no curvature to go by: unit length
            d *= 1.0 / max(float(np.sqrt(np.dot(g, g))), 1e-12)
        for j in order:
            d += np.multiply(S[j], alpha[j] - rho[j] * np.dot(Y[j], d), out=tmp)
        slope = float(np.dot(g, d))
        if slope >= 0:  # not a descent direction (rounding): fall back to the gradient
            np.negative(g, out=d)
            slope = -float(np.dot(g, g))
        # a step satisfying the weak Wolfe conditions (enough decrease, and the slope flattened
        # enough that the curvature pair is informative), by doubling and bisection
        t, low, high = 1.0, 0.0, np.inf
        for _ in range(40):
            np.add(x, np.multiply(d, t, out=x_new), out=x_new)
            f_new, g_new = objective(x_new)
            if not f_new <= f + 1e-4 * t * slope:  # "not <=" also catches a NaN
                high = t
            elif float(np.dot(g_new, d)) < 0.9 * slope:
                low = t
            else:
                break
            t = 2.0 * low if high == np.inf else 0.5 * (low + high)
        else:
            if not f_new <= f:  # no decrease along d: as close as rounding allows
                return x
        s, y = S[spare], Y[spare]
        np.subtract(x_new, x, out=s)
        np.subtract(g_new, g, out=y)
        sy = float(np.dot(s, y))
        if sy > 1e-10 * float(np.dot(y, y)):
            rho[spare] = 1.0 / sy
            order.append(spare)
            spare = order.pop(0) if len(order) > history else len(order)
        done = (f - f_new) <= ftol * max(abs(f), abs(f_new), 1.0)
        x, x_new = x_new, x
        f, g = f_new, g_new
        if done:
            break
    return x


def calibration(scores, outcomes, bins: int = 10) -> dict[str, float]:
    """How far scores are from being probabilities: log-loss, Brier score and the expected
    calibration error (the mean |mean score - share of positives| over equal-width bins,
    weighted by the bins' sizes)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-9, 1 - 1e-9)
    y = np.asarray(outcomes, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[which == b].mean() - y[which == b].mean()) * (which == b).mean()
              for b in range(bins) if (which == b).any())
    log_loss = -float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return {"log_loss": log_loss, "brier": float(np.mean((y - p) ** 2)), "ece": float(ece),
            "mean_score": float(p.mean()), "positive_rate": float(y.mean())}


def _f1_at(scores: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``scores >= t``."""
    hit = scores >= t
    tp, fp, fn = int((hit & y).sum()), int((hit & ~y).sum()), int((~hit & y).sum())
    return (tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0,
            2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)


def _best_threshold(scores: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """The score cut that maximises F1 (midway between neighbouring scores), with P, R, F1."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order].astype(np.int64)
    tp = np.cumsum(t)
    fp = np.cumsum(1 - t)
    pos = max(int(t.sum()), 1)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / pos
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall,
                                                                                1e-12), 0.0)
    # only cut between distinct scores
    last_of_run = np.r_[s[1:] != s[:-1], True]
    f1 = np.where(last_of_run, f1, -1.0)
    i = int(np.argmax(f1))
    below = s[i + 1] if i + 1 < len(s) else 0.0
    threshold = float((s[i] + below) / 2) if i + 1 < len(s) else float(s[i] / 2)
    return threshold, float(precision[i]), float(recall[i]), float(max(f1[i], 0.0))
