"""Suggestions: rank codebook codes for each segment, and retrain on the coders' decisions.

``suggest`` scores segments with the current model (the latest trained one for the current
codebook version, else the codebook alone) and stores the top codes in ``suggestions``.
``train`` refits the model from scratch on confirmed/added (positive), rejected and no_code
(negative) codings, never on auto-accepted ones, and stores it as a numbered model version with
cross-validated quality per code. The estimator itself is :class:`coder.machine.model.CodeSuggester`.

Only leaf codes are suggested (a parent is the sum of its children). A code with ``speakers``
is suggested only for segments whose speaker label or role is listed; interviewer turns get no
suggestions unless ``include_interviewer`` is set.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from coder.errors import CoderError, NothingToDo, StudyError, UnknownReference
from coder.machine.embed import (
    BACKEND_ENV,
    Embedder,
    Progress,
    backend_of,
    default_embedder,
    embed_segments,
    embed_texts,
    shared_embedder,
)
from coder.machine.model import CodeSuggester
from coder.machine.stored import OUT_OF_FOLD, OutOfFold, out_of_fold, read_array  # noqa: F401
from coder.spreadsheet import neutralise_frame
from coder.store import POSITIVE
from coder.store.db import now

if TYPE_CHECKING:
    from coder.store import Store
    from coder.store.codebook import Code, Codebook



NEGATIVE = ("rejected",)
JUDGE_AT = 5  # fewer confirmed segments than this: a code's cross-validated F1 is noise
SUGGESTION_COLUMNS = ["document", "segment", "speaker", "text", "code", "score", "rank", "source",
                      "model_version"]


class NoCodebookText(NothingToDo):
    """Zero-shot suggestion needs codes that say something about themselves."""


@dataclass
class ModelSummary:
    version: int
    kind: str
    embedder: str
    codebook_version: int
    seed: int | None
    created_at: str
    params: dict[str, Any] = field(default_factory=dict)
    trained_on: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def per_code(self) -> pd.DataFrame:
        """Cross-validated precision, recall, F1 and support per code."""
        return pd.DataFrame(self.metrics.get("per_code", []))


# -- codes, eligibility, features -------------------------------------------------------------
def suggestable_codes(book: Codebook) -> list[Code]:
    """Leaf codes that can be coded, in codebook order (a non-codable category, REFI-QDA's
    isCodable="false", only groups codes and is never suggested)."""
    return [c for c in book.leaves() if c.codable]


def _pieces(code: Code) -> list[str]:
    parts = [code.name, code.description, code.include, *code.items, *code.examples]
    return [p.strip() for p in parts if p and p.strip()]


def piece_kinds(codes: list[Code]) -> np.ndarray:
    """For each piece of ``code_vectors``, in its order: 0 for the code's own words (name,
    description, include), 1 for its items and examples."""
    kinds = []
    for code in codes:
        for part, kind in ((code.name, 0), (code.description, 0), (code.include, 0),
                           *((t, 1) for t in (*code.items, *code.examples))):
            if part and part.strip():
                kinds.append(kind)
    return np.asarray(kinds, dtype=np.int8)


def _has_text(code: Code) -> bool:
    return bool(code.description or code.include or code.items or code.examples)


def code_vectors(study: Store, codes: list[Code], embedder: Embedder):
    """Per code: the mean of its pieces' vectors (renormalised), plus the pieces themselves."""
    pieces, owner = [], []
    for i, code in enumerate(codes):
        for text in _pieces(code):
            pieces.append(text)
            owner.append(i)
    vectors = embed_texts(study, pieces, embedder)
    owner_arr = np.asarray(owner, dtype=np.int32)
    protos = np.zeros((len(codes), vectors.shape[1]), dtype=np.float32)
    for i in range(len(codes)):
        v = vectors[owner_arr == i].mean(axis=0)
        protos[i] = v / (np.linalg.norm(v) or 1.0)
    return protos, vectors, owner_arr


def codebook_model(study: Store, codes: list[Code], embedder: Embedder,
                   **params: Any) -> CodeSuggester:
    """The model of day one: fitted on no labels, it scores from the codebook text alone."""
    protos, pieces, owner = code_vectors(study, codes, embedder)
    return CodeSuggester(**params).fit(
        np.zeros((0, protos.shape[1])), np.zeros((0, len(codes))), code_ids=[c.id for c in codes],
        code_vectors=protos, piece_vectors=pieces, piece_code=owner,
        piece_kind=piece_kinds(codes))


def eligibility(codes: list[Code], segments: pd.DataFrame) -> np.ndarray:
    """(segments, codes) bool: a code with ``speakers`` applies only to those labels or roles."""
    labels = segments["speaker"].fillna("").astype(str).str.lower().to_numpy()
    roles = segments["role"].fillna("participant").astype(str).str.lower().to_numpy()
    mask = np.ones((len(segments), len(codes)), dtype=bool)
    for j, code in enumerate(codes):
        if code.speakers:
            allowed = {s.strip().lower() for s in code.speakers}
            mask[:, j] = np.isin(labels, list(allowed)) | np.isin(roles, list(allowed))
    return mask


@dataclass
class Features:
    """Per segment row: its embedding ``X``, text, the previous turn's text (same document, ""
    for a document's first turn), ``extra`` dense features (speaker role) and ``previous`` (the
    row of the previous turn, -1 for none). The previous turn's embedding (``context``) is made
    on demand: the model reads it only with ``context_embedding``, and at 30,000 segments it is
    50 MB."""

    X: np.ndarray
    texts: list[str]
    context_texts: list[str]
    extra: np.ndarray
    previous: np.ndarray

    @property
    def context(self) -> np.ndarray:
        return self.context_of(np.arange(len(self.X)))

    def context_of(self, rows: np.ndarray) -> np.ndarray:
        """The previous turn's embedding of each of ``rows`` (zeros where there is none)."""
        prev = self.previous[rows]
        out = self.X[np.maximum(prev, 0)]
        out[prev < 0] = 0.0
        return out

    def kwargs(self, rows: np.ndarray | None = None, *, context: bool = True) -> dict[str, Any]:
        """The model's keyword inputs for ``rows`` (all rows: no copies); ``context=False``
        leaves out the previous turns' embeddings (for a model that does not read them)."""
        if rows is None or _every_row(rows, len(self.X)):
            return {"context": self.context if context else None, "texts": self.texts,
                    "context_texts": self.context_texts, "extra": self.extra}
        return {"context": self.context_of(rows) if context else None,
                "texts": [self.texts[i] for i in rows],
                "context_texts": [self.context_texts[i] for i in rows],
                "extra": self.extra[rows]}

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The embeddings of ``rows`` (all rows: no copy)."""
        return self.X if _every_row(rows, len(self.X)) else self.X[rows]

    def documents(self, keep: np.ndarray) -> Features:
        """The features of the rows in ``keep`` (a boolean mask of whole documents): what
        `segment_features` gives for those rows alone."""
        if keep.all():
            return self
        new = np.cumsum(keep) - 1
        prev = self.previous[keep]
        return Features(self.X[keep], [t for t, k in zip(self.texts, keep) if k],
                        [t for t, k in zip(self.context_texts, keep) if k], self.extra[keep],
                        np.where(prev >= 0, new[np.maximum(prev, 0)], -1))


def _every_row(rows: np.ndarray, n: int) -> bool:
    rows = np.asarray(rows)
    return len(rows) == n and (n == 0 or (rows[0] == 0 and rows[-1] == n - 1
                                          and bool((np.diff(rows) == 1).all())))


def segment_features(study: Store, segments: pd.DataFrame, embedder: Embedder,
                     progress: Progress | None = None) -> Features:
    """Embeddings of each segment and of the turn before it (same document), and speaker role.

    ``segments`` must hold whole documents in reading order so each row's previous turn is there.
    """
    X = embed_segments(study, segments, embedder, progress=progress)
    doc = segments["document_id"].to_numpy()
    same_doc = np.r_[False, doc[1:] == doc[:-1]]
    previous = np.where(same_doc, np.arange(len(segments)) - 1, -1)
    texts = segments["text"].tolist()
    context_texts = [texts[p] if p >= 0 else "" for p in previous.tolist()]
    extra = (segments["role"].to_numpy() == "interviewer").astype(np.float32)[:, None]
    return Features(X, texts, context_texts, extra, previous)


# -- models ------------------------------------------------------------------------------------
def _current_model(study: Store, book: Codebook, embedder: Embedder):
    row = study.db.one(
        "SELECT version FROM models WHERE kind='trained' AND codebook_version=? AND embedder=? "
        "ORDER BY version DESC LIMIT 1", (book.version, embedder.name))
    if row is None:
        return None, None
    return row["version"], load_model(study, row["version"])


def load_model(study: Store, version: int) -> CodeSuggester:
    """A stored model version rebuilt from its arrays (no pickle involved)."""
    rows = study.db.query("SELECT name, dtype, shape, CAST(data AS BLOB) AS data, sha256 "
                          "FROM model_arrays "
                          "WHERE model_version=?", (version,))
    if not rows:
        raise UnknownReference(f"model version {version} has no stored arrays")
    arrays = {r["name"]: read_array(study, version, r) for r in rows}
    try:
        return CodeSuggester.from_arrays(arrays)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as e:
        raise StudyError(f"model version {version} in {study.path} is damaged ({e})",
                         hint=f"train a new one: coder train {study.path}") from None


# plain numbers, booleans and fixed-width text only: never objects, whatever the file says
def _store_arrays(conn, version: int, arrays: dict[str, np.ndarray]) -> None:
    rows = []
    for name, a in sorted(arrays.items()):
        a = np.ascontiguousarray(a)
        data = a.tobytes()
        rows.append((version, name, a.dtype.str, json.dumps(list(a.shape)), data,
                     hashlib.sha256(data).hexdigest()))
    conn.executemany("INSERT INTO model_arrays (model_version, name, dtype, shape, data, sha256) "
                     "VALUES (?,?,?,?,?,?)", rows)


def _existing_codebook_model(study: Store, book: Codebook, embedder: Embedder) -> int | None:
    """The codebook model made with today's parameters (a coder upgrade that changes them, e.g.
    the zero-shot constants, gets a new version, so each version's scores match its record)."""
    params = json.dumps(CodeSuggester().get_params(), sort_keys=True)
    row = study.db.one("SELECT version FROM models WHERE kind='codebook' AND codebook_version=? "
                       "AND embedder=? AND params=? ORDER BY version DESC LIMIT 1",
                       (book.version, embedder.name, params))
    return row["version"] if row else None


def _codebook_model_version(study: Store, book: Codebook, embedder: Embedder,
                            model: CodeSuggester) -> int:
    """The numbered 'codebook' model for this codebook version and embedder (made once)."""
    existing = _existing_codebook_model(study, book, embedder)
    if existing is not None:
        return existing
    version = (study.db.one("SELECT MAX(version) FROM models")[0] or 0) + 1
    study.db.execute(
        "INSERT INTO models (version, kind, embedder, codebook_version, seed, params, trained_on,"
        " metrics, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (version, "codebook", embedder.name, book.version, model.seed,
         json.dumps(model.get_params(), sort_keys=True), "{}", "{}", now()))
    _store_arrays(study.db.conn, version, model.to_arrays())
    return version


# -- suggest -----------------------------------------------------------------------------------
class BackendMismatch(CoderError):
    """The current trained model learned from vectors of another backend than the one asked
    for: its weights mean nothing on them."""


def suggest_embedder(study: Store, book: Codebook, *, embedder: Embedder | None = None,
                     backend: str | None = None) -> Embedder:
    """What ``suggest`` embeds with: ``embedder``; else the one of ``backend``; else the
    backend the current trained model (this codebook version) learned from, or the default.
    Refused (:class:`BackendMismatch`) when that model learned from other vectors."""
    if embedder is not None and backend is not None:
        raise CoderError("give an embedder or a backend, not both")
    chosen = embedder or (shared_embedder(backend) if backend is not None else None)
    row = study.db.one("SELECT version, embedder FROM models WHERE kind='trained' AND "
                       "codebook_version=? ORDER BY version DESC LIMIT 1", (book.version,))
    if chosen is None:
        chosen = default_embedder()
        follow = backend_of(row["embedder"]) if row is not None else None
        if row is not None and row["embedder"] != chosen.name and follow is not None:
            return shared_embedder(follow)  # the model's own backend: nothing is mixed
    if row is not None and row["embedder"] != chosen.name:
        theirs = backend_of(row["embedder"])
        mine = getattr(chosen, "backend", None) or chosen.name
        if theirs is None:
            raise BackendMismatch(
                f"model v{row['version']} learned from '{row['embedder']}' vectors, which no "
                f"embedding backend of this coder makes",
                hint=f"retrain on {mine} vectors: coder train {study.path}")
        raise BackendMismatch(
            f"model v{row['version']} learned from {row['embedder']} vectors (backend "
            f"{theirs}); suggesting with backend {mine} would mix vectors of two backends",
            hint=f"use --backend {theirs}, or retrain on {mine} vectors: "
                 f"{BACKEND_ENV}={mine} coder train {study.path}")
    return chosen


def suggest(study: Store, *, documents: list[str] | None = None, top_k: int = 3,
            min_score: float = 0.05, recompute: bool = False, embedder: Embedder | None = None,
            include_interviewer: bool = False, backend: str | None = None,
            dask: str | None = None, workers: int | None = None,
            progress: Progress | None = None) -> pd.DataFrame:
    """Score segments and store up to ``top_k`` codes per segment scoring at least ``min_score``.

    Without ``recompute``, segments that already have suggestions from the current model are
    left as they are. Returns the suggestions written (columns as the export, plus code_id,
    segment_id and threshold).

    ``backend`` says what computes the vectors (``embed.BACKENDS``); without it (and without
    ``embedder``), the backend the current trained model learned from, else the default. A
    trained model is never fed another backend's vectors: that is refused. ``dask`` (a
    scheduler address) or ``workers`` (a local cluster of that many processes) spread the
    encoding over a Dask cluster; this process alone writes the study.
    """
    if top_k < 1:
        raise CoderError("--top-k must be at least 1")
    if not 0.0 <= min_score <= 1.0:
        raise CoderError("--min-score must be between 0 and 1")
    if dask is not None and workers is not None:
        raise CoderError("use --dask or --workers, not both")
    book = study.codebook()
    documents = study.check_documents(documents)
    codes = suggestable_codes(book)
    embedder = suggest_embedder(study, book, embedder=embedder, backend=backend)
    if dask is not None or workers is not None:
        from coder.machine.distributed import DaskEmbedder

        with DaskEmbedder(embedder, address=dask, workers=workers) as cluster:
            return suggest(study, documents=documents, top_k=top_k, min_score=min_score,
                           recompute=recompute, embedder=cluster,
                           include_interviewer=include_interviewer, progress=progress)
    version, model = _current_model(study, book, embedder)
    if model is None and not any(_has_text(c) for c in codes):
        raise NoCodebookText(
            f"codebook version {book.version}: no code has a description, include text, items or "
            "examples, so there is nothing to compare segments with",
            hint="add descriptions to the codebook, or code some segments and run: coder train "
                 f"{study.path}")
    segs = study.segments(documents=documents, include_interviewer=True)
    current = version if version is not None else _existing_codebook_model(study, book, embedder)
    done = set()
    if not recompute and current is not None:
        done = {r[0] for r in study.db.query(
            "SELECT DISTINCT segment_id FROM suggestions WHERE model_version=?", (current,))}
    return _score(study, book, codes, model, version, embedder, segs, None, top_k=top_k,
                  min_score=min_score, include_interviewer=include_interviewer, done=done,
                  progress=progress)


class _StudySegments:
    """Every segment of the study in reading order and its features, read on first use and
    then shared, when one process trains and suggests (`train_and_suggest`)."""

    def __init__(self, study: Store, embedder: Embedder, progress: Progress | None):
        self.study, self.embedder, self.progress = study, embedder, progress
        self._read: tuple[pd.DataFrame, Features] | None = None

    def get(self) -> tuple[pd.DataFrame, Features]:
        if self._read is None:
            segs = self.study.segments(include_interviewer=True)
            self._read = segs, segment_features(self.study, segs, self.embedder, self.progress)
        return self._read

    def documents(self, doc_ids) -> tuple[pd.DataFrame, Features]:
        """Those documents' segments and features, as if read for them alone."""
        segs, feats = self.get()
        keep = segs["document_id"].isin(doc_ids).to_numpy()
        return segs[keep].reset_index(drop=True), feats.documents(keep)


_COLUMNS = [*SUGGESTION_COLUMNS, "code_id", "segment_id", "threshold"]
_INSERT = ("INSERT INTO suggestions (segment_id, code_id, score, rank, source, threshold, "
           "model_version, codebook_version, created_at) VALUES (?,?,?,?,?,?,?,?,?)")


BULK_REWRITE = 20_000  # suggestions written at once from which their indexes are rebuilt


def _replace_suggestions(conn, segment_ids: list[int], rows, n_rows: int) -> None:
    """The suggestions of ``segment_ids`` replaced by ``rows``, in the caller's transaction.
    A rewrite of ``BULK_REWRITE`` rows or more drops the table's secondary indexes and builds
    them again afterwards from the SQL the study holds for them: one sort instead of keeping
    them in order row by row (a third less time for 90,000 rows)."""
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='suggestions' "
        "AND sql IS NOT NULL").fetchall() if n_rows >= BULK_REWRITE else []
    for name, _ in indexes:
        conn.execute('DROP INDEX "%s"' % name.replace('"', '""'))
    conn.execute("DELETE FROM suggestions WHERE segment_id IN (SELECT value FROM json_each(?))",
                 (json.dumps(segment_ids),))
    conn.executemany(_INSERT, rows)
    for _, sql in indexes:
        conn.execute(sql)


def _score(study: Store, book: Codebook, codes: list[Code], model: CodeSuggester | None,
           version: int | None, embedder: Embedder, segs: pd.DataFrame,
           feats: Features | None, *, top_k: int, min_score: float, include_interviewer: bool,
           done: set[int], progress: Progress | None) -> pd.DataFrame:
    """Score the target segments of ``segs`` (whole documents in reading order; participants'
    turns unless ``include_interviewer``, less ``done``) with ``model`` (None: the codebook
    model), replace their stored suggestions and return them. ``feats``: the features of
    ``segs`` when already made."""
    target = np.ones(len(segs), bool) if include_interviewer else \
        np.array(segs["role"] == "participant", dtype=bool)
    if done and target.any():
        target &= ~segs["segment_id"].isin(done).to_numpy()
    rows = np.flatnonzero(target)
    if not len(rows):
        return pd.DataFrame(columns=_COLUMNS)
    # only documents with something to score need embedding
    keep = np.isin(segs["document_id"].to_numpy(), segs["document_id"].to_numpy()[rows])
    if not keep.all():
        segs = segs[keep].reset_index(drop=True)
        rows = np.flatnonzero(target[keep])
        feats = feats.documents(keep) if feats is not None else None
    if feats is None:
        feats = segment_features(study, segs, embedder, progress=progress)
    if model is None:
        model = codebook_model(study, codes, embedder)
    sub = segs.iloc[rows].reset_index(drop=True)
    model_codes = [str(c) for c in model.code_ids_]
    by_id = {c.id: c for c in codes}
    model_code_objs = [by_id.get(c) for c in model_codes]
    mask = eligibility([c for c in model_code_objs if c is not None], sub)
    if None in model_code_objs:  # a code dropped from the codebook since training
        full = np.zeros((len(sub), len(model_codes)), bool)
        full[:, [i for i, c in enumerate(model_code_objs) if c is not None]] = mask
        mask = full
    scores = model.predict_proba(feats.rows(rows), mask=mask, **feats.kwargs(
        rows, context=model.uses_context_vectors))
    # the top_k codes of each row; ranks count only the codes that pass
    top = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    passes = np.take_along_axis(mask, top, axis=1) & (top_scores >= min_score)
    ranks = np.cumsum(passes, axis=1)
    row, col = np.nonzero(passes)
    picked = top[row, col]
    seg_ids = sub["segment_id"].to_numpy(np.int64)[row]
    code_ids = np.asarray(model_codes, dtype=object)[picked].tolist()
    sources = np.asarray([model.source_of(c) for c in range(len(model_codes))],
                         dtype=object)[picked].tolist()
    score, threshold = top_scores[row, col], model.thresholds_[picked].astype(float)
    rank = ranks[row, col].astype(int)
    stamp = now()
    with study.db.transaction() as conn:
        if version is None:
            version = _codebook_model_version(study, book, embedder, model)
        _replace_suggestions(conn, sub["segment_id"].astype(int).tolist(), zip(
            seg_ids.tolist(), code_ids, map(round, score.tolist(), repeat(6)), rank.tolist(),
            sources, map(round, threshold.tolist(), repeat(6)), repeat(version),
            repeat(book.version), repeat(stamp)), len(code_ids))
    paths = {c.id: c.path for c in codes}
    meta = sub.iloc[row]
    out = pd.DataFrame({
        "document": meta["document"].to_numpy(), "segment": meta["position"].to_numpy(),
        "speaker": meta["speaker"].to_numpy(), "text": meta["text"].to_numpy(),
        "code": [paths.get(c, c) for c in code_ids], "score": np.round(score, 6),
        "rank": rank, "source": sources, "model_version": version, "code_id": code_ids,
        "segment_id": seg_ids, "threshold": np.round(threshold, 6)})
    return out[_COLUMNS]


def suggestions(study: Store, *, documents: list[str] | None = None) -> pd.DataFrame:
    """The stored suggestions, in reading order then rank."""
    documents = study.check_documents(documents)
    sql = ("SELECT v.document, v.position AS segment, v.speaker, v.text, g.code_id, g.score, "
           "g.rank, g.source, g.model_version, g.threshold, g.codebook_version, g.segment_id "
           "FROM suggestions g JOIN segment_view v ON v.segment_id = g.segment_id")
    params: list[Any] = []
    if documents:
        sql += " WHERE v.document IN (%s)" % ",".join("?" * len(documents))
        params = list(documents)
    sql += " ORDER BY v.document, v.position, g.rank"
    df = pd.read_sql_query(sql, study.db.conn, params=params)
    paths = {r["id"]: r["path"] for r in study.db.query(
        "SELECT c.id, c.path FROM codes c WHERE c.codebook_version = "
        "(SELECT MAX(version) FROM codebook_versions)")}
    df.insert(4, "code", [paths.get(c, c) for c in df["code_id"]])
    return df


def export_suggestions(study: Store, path: str | Path) -> pd.DataFrame:
    """Write the stored suggestions as CSV (document,segment,speaker,text,code,score,rank,
    source,model_version); returns what was written."""
    path = Path(path)
    if not path.parent.exists():
        raise CoderError(f"folder {path.parent} does not exist", path=path)
    df = suggestions(study)
    if df.empty:
        raise NothingToDo("the study has no suggestions yet",
                          hint=f"make some with: coder suggest {study.path}")
    df = df[SUGGESTION_COLUMNS]
    neutralise_frame(df).to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return df


# -- train -------------------------------------------------------------------------------------
SPAN_TRAINING_RULE = ("a segment is a positive for a code when a coded span covering at least "
                      "half of it carries the code; the text of a narrower span is an extra "
                      "positive example, and its segment is neither positive nor negative for "
                      "that code")


def _coder_filter(study: Store, coders: list[str] | None) -> tuple[str, list[Any]]:
    if not coders:
        return "", []
    known = set(study.coders())
    missing = [c for c in coders if c not in known]
    if missing:
        raise UnknownReference("unknown coder(s): " + ", ".join(missing),
                               hint="coders: " + (", ".join(sorted(known)) or "none yet"))
    return " AND c.name IN (%s)" % ",".join("?" * len(coders)), list(coders)


def training_labels(study: Store, codes: list[Code], coders: list[str] | None = None):
    """Segments with decisions by the chosen coders and their labels (segments, codes) in
    {1, 0, -1}: confirmed/added -> 1; rejected -> 0; no_code, or coded with other codes, -> 0
    for every other code. A positive from any chosen coder wins over a negative. Coded spans
    follow SPAN_TRAINING_RULE (a narrow span decides its segment for the other codes only)."""
    where, params = _coder_filter(study, coders)
    sql = ("SELECT m.segment_id, m.code_id, m.decision, m.overlap * 2 >= m.length AS covers "
           "FROM coding_segments m JOIN coders c ON c.id = m.coder_id WHERE m.decision IN "
           "('confirmed','added','rejected','no_code') AND m.overlap > 0" + where)
    rows = study.db.query(sql, params)
    index = {c.id: j for j, c in enumerate(codes)}
    seg_ids = sorted({r["segment_id"] for r in rows})
    pos = {s: i for i, s in enumerate(seg_ids)}
    Y = np.full((len(seg_ids), len(codes)), -1, dtype=np.int8)
    decided = np.zeros(len(seg_ids), bool)
    for r in rows:
        if r["decision"] in POSITIVE + ("no_code",) and (
                r["decision"] == "no_code" or r["code_id"] in index):
            decided[pos[r["segment_id"]]] = True
    Y[decided] = 0
    narrow = []
    for r in rows:
        j = index.get(r["code_id"])
        if j is None:
            continue
        i = pos[r["segment_id"]]
        if r["decision"] in POSITIVE and not r["covers"]:
            narrow.append((i, j))
        elif r["decision"] in POSITIVE:
            Y[i, j] = 1
        elif r["decision"] in NEGATIVE and Y[i, j] != 1:
            Y[i, j] = 0
    for i, j in narrow:
        if Y[i, j] == 0:
            Y[i, j] = -1
    return seg_ids, Y


def span_examples(study: Store, codes: list[Code], coders: list[str] | None = None
                  ) -> pd.DataFrame:
    """The extra positive texts of SPAN_TRAINING_RULE: each coded span's characters within each
    segment it covers less than half of. Columns: segment_id, document_id, code index, text."""
    where, params = _coder_filter(study, coders)
    rows = study.db.query(
        "SELECT m.segment_id, s.document_id, m.code_id, "
        "substr(d.text, MAX(x.start_char, s.start_char) + 1, m.overlap) AS text "
        "FROM coding_segments m JOIN coding_spans x ON x.coding_id = m.coding_id "
        "JOIN segments s ON s.id = m.segment_id JOIN documents d ON d.id = s.document_id "
        "JOIN coders c ON c.id = m.coder_id "
        "WHERE m.whole = 0 AND m.overlap > 0 AND m.overlap * 2 < m.length "
        "AND m.decision IN ('confirmed','added')" + where
        + " ORDER BY m.segment_id, m.code_id, m.coding_id", params)
    index = {c.id: j for j, c in enumerate(codes)}
    out = [(r["segment_id"], r["document_id"], index[r["code_id"]], r["text"]) for r in rows
           if r["code_id"] in index and r["text"].strip()]
    return pd.DataFrame(out, columns=["segment_id", "document_id", "code", "text"])


def train(study: Store, *, coders: list[str] | None = None, embedder: Embedder | None = None,
          report: str | Path | None = None, seed: int = 0, progress: Progress | None = None,
          **params: Any) -> ModelSummary:
    """Refit the model from scratch on the coders' decisions; store it as a new version."""
    return _train(study, coders=coders, embedder=embedder, report=report, seed=seed,
                  progress=progress, params=params)[0]


def train_and_suggest(study: Store, *, coders: list[str] | None = None,
                      embedder: Embedder | None = None, report: str | Path | None = None,
                      seed: int = 0, top_k: int = 3, min_score: float = 0.05,
                      include_interviewer: bool = False, progress: Progress | None = None,
                      **params: Any) -> tuple[ModelSummary, pd.DataFrame]:
    """`train`, then `suggest` with the new model for every segment, in one process: what
    ``coder train`` followed by ``coder suggest --recompute`` store, but the study's segments
    and their vectors are read once and the model is not read back."""
    if top_k < 1:
        raise CoderError("--top-k must be at least 1")
    if not 0.0 <= min_score <= 1.0:
        raise CoderError("--min-score must be between 0 and 1")
    embedder = embedder or default_embedder()
    shared = _StudySegments(study, embedder, progress)
    summary, model = _train(study, coders=coders, embedder=embedder, report=report, seed=seed,
                            progress=progress, params=params, segments=shared)
    book = study.codebook()
    segs, feats = shared.get()
    # the model as stored (arrays), so these suggestions are the ones `coder suggest` makes
    stored = model.as_stored()
    out = _score(study, book, suggestable_codes(book), stored, summary.version, embedder, segs,
                 feats, top_k=top_k, min_score=min_score,
                 include_interviewer=include_interviewer, done=set(), progress=progress)
    return summary, out


def _train(study: Store, *, coders: list[str] | None, embedder: Embedder | None,
           report: str | Path | None, seed: int, progress: Progress | None,
           params: dict[str, Any], segments: _StudySegments | None = None
           ) -> tuple[ModelSummary, CodeSuggester]:
    book = study.codebook()
    codes = suggestable_codes(book)
    if report is not None and not Path(report).parent.exists():
        raise CoderError(f"folder {Path(report).parent} does not exist", path=report)
    seg_ids, Y = training_labels(study, codes, coders)
    extras = span_examples(study, codes, coders)
    if not (Y == 1).any() and extras.empty:
        who = f" by {', '.join(coders)}" if coders else ""
        raise NothingToDo(
            f"no confirmed codings{who} on codes of codebook version {book.version} to train on",
            hint=f"review suggestions first (coder review {study.path}) or import codings "
                 f"(coder codes import {study.path} CODINGS.csv --coder NAME)")
    embedder = embedder or default_embedder()
    labelled = set(seg_ids)
    doc_ids = {r[0] for r in study.db.query(
        "SELECT DISTINCT document_id FROM segments WHERE id IN (SELECT segment_id FROM codings)")}
    if segments is None:
        segs = study.segments(include_interviewer=True)
        segs = segs[segs["document_id"].isin(doc_ids)].reset_index(drop=True)
        feats = segment_features(study, segs, embedder, progress=progress)
    else:
        segs, feats = segments.documents(doc_ids)
    model = CodeSuggester(seed=seed, **params)
    context = model.uses_context_vectors
    rows = np.flatnonzero(segs["segment_id"].isin(labelled).to_numpy())
    order = {s: i for i, s in enumerate(seg_ids)}
    Y_rows = Y[[order[s] for s in segs["segment_id"].to_numpy()[rows]]]
    sub = segs.iloc[rows].reset_index(drop=True)
    mask = eligibility(codes, sub)
    X, kwargs = feats.X[rows], feats.kwargs(rows, context=context)
    groups = sub["document_id"].to_numpy()
    learned_from = sub["segment_id"].to_numpy(np.int64)
    if not extras.empty:
        # narrow spans as extra rows: the span's text, its segment's context and speaker; in
        # the out-of-fold arrays they belong to no segment (-1), so the machine is never
        # scored on them as if they were segments
        at = {s: i for i, s in enumerate(segs["segment_id"].to_numpy())}
        src = np.array([at[s] for s in extras["segment_id"]])
        Y_extra = np.full((len(extras), len(codes)), -1, dtype=np.int8)
        Y_extra[np.arange(len(extras)), extras["code"].to_numpy()] = 1
        X = np.vstack([X, embed_texts(study, extras["text"].tolist(), embedder)])
        Y_rows = np.vstack([Y_rows, Y_extra])
        mask = np.vstack([mask, eligibility(codes, segs.iloc[src].reset_index(drop=True))])
        kwargs = {"context": np.vstack([kwargs["context"], feats.context_of(src)])
                  if context else None,
                  "texts": kwargs["texts"] + extras["text"].tolist(),
                  "context_texts": kwargs["context_texts"]
                  + [feats.context_texts[i] for i in src],
                  "extra": np.vstack([kwargs["extra"], feats.extra[src]])}
        groups = np.r_[groups, extras["document_id"].to_numpy()]
        learned_from = np.r_[learned_from, np.full(len(extras), -1, np.int64)]
    protos, pieces, owner = code_vectors(study, codes, embedder)
    model.fit(X, Y_rows, code_ids=[c.id for c in codes], code_vectors=protos,
              piece_vectors=pieces, piece_code=owner, piece_kind=piece_kinds(codes), mask=mask,
              groups=groups, **kwargs)
    per_code = []
    for entry, code in zip(model.metrics_, codes):
        per_code.append({"code": code.path, "code_id": code.id, **{
            k: v for k, v in entry.items() if k != "code"}})
    for e in per_code:
        e["too_few_to_judge"] = e["support"] < JUDGE_AT
    f1s = [e["f1"] for e in per_code if e["f1"] is not None and e["source"] != "codebook"]
    metrics = {"per_code": per_code,
               "macro_f1_trained_codes": round(float(np.mean(f1s)), 4) if f1s else None,
               "threshold_policy": "max F1 on out-of-fold blended scores, folds by document",
               "cross_validation": {**model.cv_, "judge_at": JUDGE_AT,
                                    "thresholds": "chosen without the fold"}}
    trained_on = {
        "coders": sorted(coders) if coders else study.coders(),
        "segments": int(len(rows)),
        "documents": int(sub["document_id"].nunique()),
        "positives": {c.path: int(n) for c, n in zip(codes, model.n_positives_) if n},
        "negatives": {c.path: int(n) for c, n in zip(codes, model.n_negatives_) if n},
        "classifier_codes": [c.path for c, i in zip(codes, model.clf_index_) if i >= 0],
        "span_examples": int(len(extras)),
    }
    if study.db.one("SELECT 1 FROM codings WHERE start_char IS NOT NULL LIMIT 1") is not None:
        trained_on["span_rule"] = SPAN_TRAINING_RULE
    stamp = now()
    with study.db.transaction() as conn:
        version = (conn.execute("SELECT MAX(version) FROM models").fetchone()[0] or 0) + 1
        conn.execute(
            "INSERT INTO models (version, kind, embedder, codebook_version, seed, params,"
            " trained_on, metrics, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (version, "trained", embedder.name, book.version, seed,
             json.dumps(model.get_params(), sort_keys=True),
             json.dumps(trained_on, sort_keys=True), json.dumps(metrics, sort_keys=True), stamp))
        # the out-of-fold predictions for the segments it learned from, beside the weights:
        # `coder agree --machine` scores those segments with them, never in-sample
        _store_arrays(conn, version, {**model.to_arrays(), **model.out_of_fold(),
                                      "oof_segment": learned_from})
    summary = ModelSummary(version=version, kind="trained", embedder=embedder.name,
                           codebook_version=book.version, seed=seed, created_at=stamp,
                           params=model.get_params(), trained_on=trained_on, metrics=metrics)
    if report is not None:
        Path(report).write_text(json.dumps(summary.as_dict(), indent=2, sort_keys=True) + "\n",
                                encoding="utf-8")
    return summary, model


def model_summary(study: Store, version: int | None = None) -> ModelSummary:
    """One stored model version (the latest when ``version`` is None)."""
    if version is None:
        row = study.db.one("SELECT * FROM models ORDER BY version DESC LIMIT 1")
        if row is None:
            raise NothingToDo("the study has no models yet",
                              hint=f"suggest from the codebook (coder suggest {study.path}) or "
                                   f"train one (coder train {study.path})")
    else:
        row = study.db.one("SELECT * FROM models WHERE version=?", (version,))
        if row is None:
            raise UnknownReference(f"no model version {version}")
    return ModelSummary(version=row["version"], kind=row["kind"], embedder=row["embedder"],
                        codebook_version=row["codebook_version"], seed=row["seed"],
                        created_at=row["created_at"], params=json.loads(row["params"]),
                        trained_on=json.loads(row["trained_on"]),
                        metrics=json.loads(row["metrics"]))


def models(study: Store) -> pd.DataFrame:
    """One row per model version: when, trained on what, and its cross-validated quality."""
    out = []
    for row in study.db.query("SELECT version FROM models ORDER BY version"):
        m = model_summary(study, row["version"])
        on = m.trained_on
        out.append({
            "version": m.version, "kind": m.kind, "created_at": m.created_at,
            "codebook_version": m.codebook_version, "embedder": m.embedder,
            "coders": ",".join(on.get("coders", [])), "segments": on.get("segments", 0),
            "documents": on.get("documents", 0),
            "classifier_codes": len(on.get("classifier_codes", [])),
            "macro_f1": m.metrics.get("macro_f1_trained_codes"),
        })
    return pd.DataFrame(out, columns=["version", "kind", "created_at", "codebook_version",
                                      "embedder", "coders", "segments", "documents",
                                      "classifier_codes", "macro_f1"])


# -- cross-validated predictions ---------------------------------------------------------------
