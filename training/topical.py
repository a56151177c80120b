"""Multi-label topical coding: a prototype for coder's trained and day-one suggesters.

Two scikit-learn-style estimators over segments (rows of text, each with an optional context,
e.g. the interviewer's question before the answer):

``TopicalClassifier`` (trained on coded segments)
    Features: the segment's sentence embedding (all-MiniLM-L6-v2, L2-normalised), TF-IDF of its
    word uni- and bigrams, TF-IDF of its character 2-5-grams (within word boundaries), TF-IDF
    of the context's words and, given ``codebook``, its largest cosine similarity to each
    code's name + description and examples (one column per code); each block weighted. One L2 logistic regression
    per code (liblinear, ``class_weight="balanced"``). Out-of-fold decision values from k-fold
    cross-validation (grouped, e.g. by respondent) give, per code, a Platt calibration (so
    ``predict_proba`` is a probability, not the balanced model's inflated one) and a threshold:
    the cut maximising the code's out-of-fold F1, shrunk towards one global cut (the one that
    maximises micro-F1 over all codes) with weight ``threshold_shrink`` positives, so a code
    with 10 positives mostly keeps the global cut and one with 500 its own. ``predict``
    emits every code at or above its threshold and, when none is, the code with the largest
    probability - threshold (every coded segment has at least one code).

``CodebookScorer`` (day one: the codebook only)
    Each code's prototype is normalise(w * e(name. description) + (1 - w) * mean_i e(example_i))
    (codes without examples: the name + description vector). Cosine similarity to the
    prototypes; ``predict`` emits the top code plus every code within ``margin`` of it;
    ``predict_proba`` is softmax(similarity / temperature).

Defaults were chosen on the NHS FFT train answers only (``evaluation/bench_nhs.py``): for the
classifier by 5-fold cross-validation grouped by respondent (C in {1, 3, 10}; with/without the
codebook-similarity block, the character n-grams, the context), for the day-one scorer by a
small grid (w, margin) scored on the train answers, the temperature by cross-entropy on them.

Both follow scikit-learn's estimator contract (``__init__`` stores hyperparameters; ``fit``
returns ``self`` and sets attributes ending in ``_``) and export their learned state as JSON-able
parameters plus a dict of numpy arrays (``get_state`` / ``from_state``, ``save`` / ``load`` via
``numpy.savez`` with ``allow_pickle=False``). Nothing is pickled.

``X`` is a pandas DataFrame with a ``text`` column and an optional ``context`` column (or a list
of texts); ``Y`` is an (n_segments, n_codes) 0/1 matrix whose columns are ``codes`` (ids).
Embeddings come from ``embedder`` (anything with ``encode(list[str]) -> (n, d) float array``);
by default coder's bundled all-MiniLM-L6-v2, loaded offline.

The evaluation is ``evaluation/bench_nhs.py``.

What moved into coder's ``CodeSuggester`` (issue 18): the character n-grams (default on,
``char_features``; built per distinct word by ``coder.machine.model.CharNgrams``, far cheaper
than scikit-learn's analyzer) and the day-one code vector blended from the code's own words
and its examples (``prototype_weight``); class-balanced weights, per-code Platt scaling, cuts
shrunk towards a shared one and the codebook-similarity columns as options, off by default
because cross-validation on the train splits did not support them (NHS) or they hurt (AnnoMI
client talk). The liblinear fit per code, 5 folds and the uncapped character vocabulary stay
here: they cost most of this prototype's 14x longer fit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, KFold

STATE_VERSION = 1
TOKEN_PATTERN = r"(?u)\b\w+\b|[?!]"


# -- embeddings ---------------------------------------------------------------------------------
def default_embedder():
    """coder's bundled all-MiniLM-L6-v2 on CPU, offline, float32 through sentence-transformers
    (the vectors the figures in evaluation/NHS_RESULTS.md were measured with)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from coder.machine.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def _normalise(V: np.ndarray) -> np.ndarray:
    V = np.asarray(V, dtype=np.float32)
    n = np.linalg.norm(V, axis=-1, keepdims=True)
    return V / np.where(n == 0, 1.0, n)


def _columns(X) -> tuple[list[str], list[str]]:
    """(texts, contexts) from a DataFrame with ``text`` [, ``context``] or a list of texts."""
    if hasattr(X, "columns"):
        texts = [str(t) for t in X["text"]]
        ctx = [str(c) for c in X["context"]] if "context" in X.columns else [""] * len(texts)
        return texts, ctx
    texts = [str(t) for t in X]
    return texts, [""] * len(texts)


def _embed(embedder, texts: list[str]) -> np.ndarray:
    embedder = embedder if embedder is not None else default_embedder()
    return _normalise(embedder.encode(list(texts)))


# -- TF-IDF blocks that export as arrays ----------------------------------------------------------
def _word_vectorizer(min_df: int, vocabulary=None) -> TfidfVectorizer:
    return TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True, min_df=min_df,
                           token_pattern=TOKEN_PATTERN, dtype=np.float32, vocabulary=vocabulary)


def _char_vectorizer(min_df: int, max_features: int | None, vocabulary=None) -> TfidfVectorizer:
    return TfidfVectorizer(lowercase=True, analyzer="char_wb", ngram_range=(2, 5),
                           sublinear_tf=True, min_df=min_df, max_features=max_features,
                           dtype=np.float32, vocabulary=vocabulary)


def _context_vectorizer(vocabulary=None) -> TfidfVectorizer:
    return TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                           token_pattern=TOKEN_PATTERN, dtype=np.float32, vocabulary=vocabulary)


def _vectorizer_arrays(vec: TfidfVectorizer | None, prefix: str) -> dict[str, np.ndarray]:
    if vec is None:
        return {}
    terms = vec.get_feature_names_out()
    return {f"{prefix}_terms": np.asarray(terms, dtype=str),
            f"{prefix}_idf": np.asarray(vec.idf_, dtype=np.float64)}


def _vectorizer_from(arrays: dict[str, np.ndarray], prefix: str, make) -> TfidfVectorizer | None:
    if f"{prefix}_terms" not in arrays:
        return None
    terms = [str(t) for t in arrays[f"{prefix}_terms"]]
    vec = make({t: i for i, t in enumerate(terms)})
    vec.idf_ = np.asarray(arrays[f"{prefix}_idf"], dtype=np.float64)
    return vec


class _Features:
    """The fitted feature map: TF-IDF vectorizers and block weights."""

    def __init__(self, est: TopicalClassifier, pieces: np.ndarray | None = None,
                 owner: np.ndarray | None = None):
        self.est = est
        self.word = self.char = self.context = None
        self.pieces, self.owner = pieces, owner  # codebook piece vectors and their code

    def fit(self, texts, contexts):
        e = self.est
        if e.word_weight:
            self.word = _word_vectorizer(e.min_df).fit(texts)
        if e.char_weight:
            self.char = _char_vectorizer(e.min_df, e.max_char_features).fit(texts)
        if e.context_weight and any(contexts):
            self.context = _context_vectorizer().fit(contexts)
        return self

    def transform(self, texts, contexts, E: np.ndarray):
        e = self.est
        blocks = []
        if self.word is not None:
            blocks.append(self.word.transform(texts) * e.word_weight)
        if self.char is not None:
            blocks.append(self.char.transform(texts) * e.char_weight)
        if self.context is not None:
            blocks.append(self.context.transform(contexts) * e.context_weight)
        if e.embedding_weight:
            blocks.append(sp.csr_matrix(E * e.embedding_weight))
        if self.pieces is not None and len(self.pieces):
            blocks.append(sp.csr_matrix(codebook_similarity(E, self.pieces, self.owner)
                                        * e.codebook_weight))
        return sp.hstack(blocks, format="csr", dtype=np.float32)


def codebook_pieces(codebook: list[dict], embedder) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of each code's name + description and of each of its examples, and the index
    of the code each piece belongs to."""
    texts, owner = [], []
    for j, code in enumerate(codebook):
        head, examples = code_texts(code)
        for t in [head, *examples]:
            texts.append(t)
            owner.append(j)
    return _embed(embedder, texts), np.asarray(owner, dtype=np.int64)


def codebook_similarity(E: np.ndarray, pieces: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(n, codes): each segment's largest cosine similarity to any piece of each code."""
    S = E @ pieces.T
    out = np.full((len(E), int(owner.max()) + 1), -1.0, dtype=np.float32)
    for j in range(out.shape[1]):
        cols = owner == j
        if cols.any():
            out[:, j] = S[:, cols].max(axis=1)
    return out


# -- the trained classifier -----------------------------------------------------------------------
def _fit_code(X, y, C: float, tol: float):
    m = LogisticRegression(C=C, solver="liblinear", class_weight="balanced", tol=tol,
                           max_iter=1000)
    m.fit(X, y)
    return m.coef_.ravel().astype(np.float32), float(m.intercept_[0])


def _fit_codes(X, Y: np.ndarray, C: float, tol: float, min_positives: int, n_jobs: int):
    """Coefficients (codes, features), intercepts and which codes have a classifier."""
    from joblib import Parallel, delayed

    fit = Y.sum(axis=0) >= min_positives
    fit &= (len(Y) - Y.sum(axis=0)) >= min_positives
    cols = np.flatnonzero(fit)
    out = Parallel(n_jobs=n_jobs)(delayed(_fit_code)(X, Y[:, j], C, tol) for j in cols)
    W = np.zeros((Y.shape[1], X.shape[1]), dtype=np.float32)
    b = np.full(Y.shape[1], -10.0)
    for j, (w, c) in zip(cols, out):
        W[j], b[j] = w, c
    return W, b, fit


def _platt(s: np.ndarray, y: np.ndarray, C: float = 1.0) -> tuple[float, float]:
    """P(y=1 | s) = sigmoid(a*s + b), an L2-regularised 1-D logistic fit."""
    if y.min() == y.max():
        return 0.0, float(np.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3)))
    m = LogisticRegression(C=C).fit(s.reshape(-1, 1), y)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def _f1_at(p: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float, float]:
    pred = p >= t
    tp = float((pred & (y == 1)).sum())
    prec = tp / max(pred.sum(), 1)
    rec = tp / max(y.sum(), 1)
    return prec, rec, (2 * tp / max(pred.sum() + y.sum(), 1))


def _best_cut(p: np.ndarray, y: np.ndarray) -> float:
    """The cut maximising F1 (midpoints between distinct scores among the top candidates)."""
    cand = np.unique(p[y == 1]) if y.any() else np.array([1.0])
    best_t, best_f = 1.0, -1.0
    for t in cand:
        f = _f1_at(p, y, t)[2]
        if f > best_f:
            best_t, best_f = float(t), f
    return best_t


def choose_thresholds(P: np.ndarray, Y: np.ndarray, shrink: float) -> tuple[np.ndarray, float]:
    """Per-code cuts maximising out-of-fold F1, shrunk towards the global micro-F1 cut:
    t_c = (n_c * best_c + shrink * global) / (n_c + shrink), n_c = positives of code c."""
    cells = P.ravel()
    cand = np.unique(np.quantile(cells, np.linspace(0.5, 0.9995, 400)))
    glob = max(cand, key=lambda t: _f1_at(cells, Y.ravel(), t)[2])
    T = np.full(P.shape[1], float(glob))
    for j in range(P.shape[1]):
        n = float(Y[:, j].sum())
        if n:
            T[j] = (n * _best_cut(P[:, j], Y[:, j]) + shrink * glob) / (n + shrink)
    return T, float(glob)


def decide(P: np.ndarray, T: np.ndarray, at_least_one: bool = True) -> np.ndarray:
    """0/1 decisions: P >= T; a row with none gets its code with the largest P - T."""
    D = (P >= T).astype(np.int8)
    if at_least_one and len(D):
        none = D.sum(axis=1) == 0
        D[np.flatnonzero(none), np.argmax((P - T)[none], axis=1)] = 1
    return D


class TopicalClassifier(BaseEstimator):
    """One-vs-rest logistic regression over embeddings + word/char TF-IDF + context TF-IDF,
    with cross-validated calibration and per-code thresholds. See the module docstring."""

    def __init__(self, *, C: float = 3.0, embedding_weight: float = 1.0,
                 word_weight: float = 1.0, char_weight: float = 1.0, context_weight: float = 1.0,
                 codebook_weight: float = 1.0, codebook: list[dict] | None = None,
                 min_df: int = 2, max_char_features: int | None = None, min_positives: int = 3,
                 cv: int = 5, threshold_shrink: float = 20.0, at_least_one: bool = True,
                 tol: float = 1e-4, n_jobs: int = 1, random_state: int = 0, embedder=None):
        self.C = C
        self.embedding_weight = embedding_weight
        self.word_weight = word_weight
        self.char_weight = char_weight
        self.context_weight = context_weight
        self.codebook_weight = codebook_weight
        self.codebook = codebook
        self.min_df = min_df
        self.max_char_features = max_char_features
        self.min_positives = min_positives
        self.cv = cv
        self.threshold_shrink = threshold_shrink
        self.at_least_one = at_least_one
        self.tol = tol
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.embedder = embedder

    # -- fitting --------------------------------------------------------------------------------
    def _folds(self, n: int, groups):
        if groups is not None and len(set(groups)) >= self.cv:
            return list(GroupKFold(self.cv, shuffle=True, random_state=self.random_state)
                        .split(np.zeros(n), groups=groups))
        return list(KFold(self.cv, shuffle=True, random_state=self.random_state)
                    .split(np.zeros(n)))

    def _fit_block(self, texts, contexts, E, Y):
        feats = _Features(self, self.codebook_pieces_, self.codebook_owner_).fit(texts, contexts)
        X = feats.transform(texts, contexts, E)
        W, b, has = _fit_codes(X, Y, self.C, self.tol, self.min_positives, self.n_jobs)
        return feats, W, b, has

    def fit(self, X, Y, *, codes=None, groups=None, embeddings: np.ndarray | None = None):
        """Fit on segments ``X`` and their 0/1 codes ``Y`` (n, K). ``groups`` (e.g. respondent
        or document ids) keep a group's segments in one cross-validation fold; ``embeddings``
        may be given instead of encoding ``X``'s texts."""
        texts, contexts = _columns(X)
        Y = np.asarray(Y, dtype=np.int8)
        E = _normalise(embeddings) if embeddings is not None else _embed(self.embedder, texts)
        K = Y.shape[1]
        if self.codebook and self.codebook_weight:
            self.codebook_pieces_, self.codebook_owner_ = codebook_pieces(self.codebook,
                                                                          self.embedder)
        else:
            self.codebook_pieces_ = self.codebook_owner_ = None
        self.classes_ = np.asarray(codes if codes is not None else [str(j) for j in range(K)],
                                   dtype=str)
        # out-of-fold decision values: calibration and thresholds never see their own rows
        S = np.zeros(Y.shape, dtype=np.float64)
        for tr, te in self._folds(len(texts), groups):
            sub = [texts[i] for i in tr], [contexts[i] for i in tr]
            feats, W, b, has = self._fit_block(*sub, E[tr], Y[tr])
            Xte = feats.transform([texts[i] for i in te], [contexts[i] for i in te], E[te])
            S[te] = Xte @ W.T + b
            S[np.ix_(te, ~has)] = -10.0
        self.platt_ = np.array([_platt(S[:, j], Y[:, j]) for j in range(K)], dtype=np.float64)
        P = _sigmoid(S * self.platt_[:, 0] + self.platt_[:, 1])
        self.thresholds_, self.global_threshold_ = choose_thresholds(P, Y, self.threshold_shrink)
        # the full fit
        feats, self.coef_, self.intercept_, self.has_classifier_ = self._fit_block(
            texts, contexts, E, Y)
        self._features = feats
        self.thresholds_[~self.has_classifier_] = 1.0  # never "yes" without a classifier
        self.n_features_ = int(self.coef_.shape[1])
        self.support_ = Y.sum(axis=0).astype(np.int64)
        D = decide(P, self.thresholds_, self.at_least_one)
        self.cv_metrics_ = np.array([_f1_at(D[:, j], Y[:, j], 1) for j in range(K)])
        tp = (D & Y).sum(axis=0)
        self.cv_counts_ = np.stack([tp, D.sum(axis=0) - tp, Y.sum(axis=0) - tp], axis=1)
        self.oof_proba_ = P  # out-of-fold probabilities (not exported)
        return self

    # -- prediction -----------------------------------------------------------------------------
    def decision_function(self, X, *, embeddings: np.ndarray | None = None) -> np.ndarray:
        texts, contexts = _columns(X)
        E = _normalise(embeddings) if embeddings is not None else _embed(self.embedder, texts)
        S = self._features.transform(texts, contexts, E) @ self.coef_.T + self.intercept_
        return np.asarray(S, dtype=np.float64)

    def predict_proba(self, X, *, embeddings: np.ndarray | None = None) -> np.ndarray:
        """(n, K) calibrated probability that each code applies (independent per code)."""
        S = self.decision_function(X, embeddings=embeddings)
        return _sigmoid(S * self.platt_[:, 0] + self.platt_[:, 1])

    def predict(self, X, *, embeddings: np.ndarray | None = None) -> np.ndarray:
        return decide(self.predict_proba(X, embeddings=embeddings), self.thresholds_,
                      self.at_least_one)

    # -- export without pickle ------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able parameters, numpy arrays): everything ``from_state`` needs."""
        params = {k: v for k, v in self.get_params().items()
                  if k not in ("embedder", "codebook")}
        params = {"kind": "TopicalClassifier", "state_version": STATE_VERSION,
                  "hyperparameters": params, "global_threshold": self.global_threshold_,
                  "n_features": self.n_features_}
        f = self._features
        arrays = {"classes": self.classes_, "coef": self.coef_, "intercept": self.intercept_,
                  "has_classifier": self.has_classifier_, "platt": self.platt_,
                  "thresholds": self.thresholds_, "support": self.support_,
                  "cv_metrics": self.cv_metrics_, "cv_counts": self.cv_counts_,
                  **_vectorizer_arrays(f.word, "word"), **_vectorizer_arrays(f.char, "char"),
                  **_vectorizer_arrays(f.context, "context")}
        if f.pieces is not None:
            arrays["codebook_pieces"] = f.pieces
            arrays["codebook_owner"] = f.owner
        return params, arrays

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray],
                   embedder=None) -> TopicalClassifier:
        if params.get("kind") != "TopicalClassifier" or params.get("state_version") != STATE_VERSION:
            raise ValueError("not a TopicalClassifier state of version %d" % STATE_VERSION)
        est = cls(**params["hyperparameters"], embedder=embedder)
        h = params["hyperparameters"]
        f = _Features(est, arrays.get("codebook_pieces"), arrays.get("codebook_owner"))
        est.codebook_pieces_, est.codebook_owner_ = f.pieces, f.owner
        f.word = _vectorizer_from(arrays, "word", lambda v: _word_vectorizer(h["min_df"], v))
        f.char = _vectorizer_from(arrays, "char",
                                  lambda v: _char_vectorizer(h["min_df"], None, v))
        f.context = _vectorizer_from(arrays, "context", _context_vectorizer)
        est._features = f
        est.classes_ = np.asarray(arrays["classes"], dtype=str)
        est.coef_ = np.asarray(arrays["coef"], dtype=np.float32)
        est.intercept_ = np.asarray(arrays["intercept"], dtype=np.float64)
        est.has_classifier_ = np.asarray(arrays["has_classifier"], dtype=bool)
        est.platt_ = np.asarray(arrays["platt"], dtype=np.float64)
        est.thresholds_ = np.asarray(arrays["thresholds"], dtype=np.float64)
        est.support_ = np.asarray(arrays["support"], dtype=np.int64)
        est.cv_metrics_ = np.asarray(arrays["cv_metrics"], dtype=np.float64)
        est.cv_counts_ = np.asarray(arrays["cv_counts"], dtype=np.int64)
        est.global_threshold_ = float(params["global_threshold"])
        est.n_features_ = int(params["n_features"])
        return est

    def save(self, path: str | Path) -> None:
        save_state(path, *self.get_state())

    @classmethod
    def load(cls, path: str | Path, embedder=None) -> TopicalClassifier:
        return cls.from_state(*load_state(path), embedder=embedder)


# -- day one: the codebook alone ------------------------------------------------------------------
def code_texts(code: dict) -> tuple[str, list[str]]:
    """(name + description, examples) of a codebook code (a dict as in coder's YAML)."""
    head = ". ".join(p for p in (code.get("name", ""), code.get("description", "")) if p)
    return head, [str(e) for e in (code.get("examples") or [])]


class CodebookScorer(BaseEstimator):
    """Zero-shot scores from the codebook's own words: see the module docstring."""

    def __init__(self, *, description_weight: float = 0.6, margin: float = 0.01,
                 temperature: float = 0.056, embedder=None):
        self.description_weight = description_weight
        self.margin = margin
        self.temperature = temperature
        self.embedder = embedder

    def fit(self, codes: list[dict], y=None):
        """``codes``: leaf codes as dicts with ``id``, ``name``, ``description``, ``examples``."""
        heads, examples = zip(*(code_texts(c) for c in codes))
        H = _embed(self.embedder, list(heads))
        flat = [e for ex in examples for e in ex]
        V = _embed(self.embedder, flat) if flat else np.zeros((0, H.shape[1]), np.float32)
        w = self.description_weight
        protos, k = [], 0
        for j, ex in enumerate(examples):
            if ex:
                protos.append(w * H[j] + (1 - w) * _normalise(V[k:k + len(ex)].mean(axis=0)))
            else:
                protos.append(H[j])
            k += len(ex)
        self.prototypes_ = _normalise(np.vstack(protos))
        self.classes_ = np.asarray([c["id"] for c in codes], dtype=str)
        return self

    def similarity(self, X, *, embeddings: np.ndarray | None = None) -> np.ndarray:
        texts, _ = _columns(X)
        E = _normalise(embeddings) if embeddings is not None else _embed(self.embedder, texts)
        return E @ self.prototypes_.T

    def predict_proba(self, X, *, embeddings: np.ndarray | None = None) -> np.ndarray:
        """softmax(similarity / temperature): a distribution over codes per segment."""
        Z = self.similarity(X, embeddings=embeddings) / self.temperature
        Z = np.exp(Z - Z.max(axis=1, keepdims=True))
        return Z / Z.sum(axis=1, keepdims=True)

    def predict(self, X, *, embeddings: np.ndarray | None = None) -> np.ndarray:
        """The top code plus every code whose similarity is within ``margin`` of it."""
        S = self.similarity(X, embeddings=embeddings)
        return (S >= S.max(axis=1, keepdims=True) - self.margin).astype(np.int8)

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {k: v for k, v in self.get_params().items() if k != "embedder"}
        return ({"kind": "CodebookScorer", "state_version": STATE_VERSION,
                 "hyperparameters": params},
                {"classes": self.classes_, "prototypes": self.prototypes_})

    @classmethod
    def from_state(cls, params, arrays, embedder=None) -> CodebookScorer:
        if params.get("kind") != "CodebookScorer":
            raise ValueError("not a CodebookScorer state")
        est = cls(**params["hyperparameters"], embedder=embedder)
        est.classes_ = np.asarray(arrays["classes"], dtype=str)
        est.prototypes_ = np.asarray(arrays["prototypes"], dtype=np.float32)
        return est


def fit_temperature(S: np.ndarray, Y: np.ndarray,
                    grid=tuple(np.geomspace(0.005, 0.5, 60))) -> float:
    """The softmax temperature minimising the cross-entropy of softmax(S / T) against each row's
    codes (shared equally among them)."""
    Q = Y / np.maximum(Y.sum(axis=1, keepdims=True), 1)

    def loss(T):
        Z = S / T
        Z = Z - Z.max(axis=1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return -(Q * logp).sum(axis=1).mean()
    return float(min(grid, key=loss))


# -- files ------------------------------------------------------------------------------------------
def save_state(path: str | Path, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """One ``.npz``: the arrays plus the parameters as a JSON string; loadable without pickle."""
    np.savez_compressed(path, __params__=np.asarray(json.dumps(params)), **arrays)


def load_state(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__params__"}
        params = json.loads(str(z["__params__"]))
    return params, arrays
